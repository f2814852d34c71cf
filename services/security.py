"""Hashing of secrets.

Passwords and code words are scrypt hashes: deliberately slow (about 50 ms of CPU each), so the
work runs in a thread, off the event loop, and callers do it before they open a write
transaction. One-time codes (six digits that expire in minutes and allow a few attempts) are a
salted SHA-256: their safety is the attempt limit and the expiry, and a slow hash would only
hold the database lock that checking an attempt needs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen)


def hash_secret_sync(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(secret, salt, _N, _R, _P, 32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_secret_sync(secret: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        kind, *fields = stored.split("$")
        if kind == "sha256":
            salt, digest = fields
            computed = hashlib.sha256(bytes.fromhex(salt) + secret.encode()).digest()
        else:
            n, r, p, salt, digest = fields
            computed = _scrypt(
                secret, bytes.fromhex(salt), int(n), int(r), int(p), len(bytes.fromhex(digest))
            )
    except ValueError:
        return False
    return hmac.compare_digest(computed.hex(), digest)


async def hash_secret(secret: str) -> str:
    """A scrypt hash, computed in a worker thread."""
    return await asyncio.to_thread(hash_secret_sync, secret)


async def verify_secret(secret: str, stored: str | None) -> bool:
    """Check against a stored hash, in a worker thread when it is a slow one."""
    if stored and stored.startswith("sha256$"):
        return verify_secret_sync(secret, stored)
    return await asyncio.to_thread(verify_secret_sync, secret, stored)


def hash_code(code: str) -> str:
    """A one-time code's hash (fast; see the module docstring)."""
    salt = secrets.token_bytes(16)
    return f"sha256${salt.hex()}${hashlib.sha256(salt + code.encode()).hexdigest()}"
