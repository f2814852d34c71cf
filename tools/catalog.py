"""Catalog chores: `fill-en` copies msgids into the English catalog (the source language),
`missing LANG` prints untranslated msgids as JSON, `apply LANG FILE.json` merges translations
({msgid: msgstr} or {msgid: [plural forms]}) into a catalog."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

LOCALES = Path(__file__).resolve().parent.parent / "locales"


def _path(lang: str) -> Path:
    return LOCALES / lang / "LC_MESSAGES" / "messages.po"


def _load(lang: str):  # type: ignore[no-untyped-def]
    with _path(lang).open("rb") as f:
        return read_po(f, locale=lang)


def _save(lang: str, catalog) -> None:  # type: ignore[no-untyped-def]
    with _path(lang).open("wb") as f:
        write_po(
            f,
            catalog,
            width=100,
            omit_header=False,
            sort_output=True,
            no_location=True,
            include_previous=False,
        )


def _untranslated(message) -> bool:  # type: ignore[no-untyped-def]
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    return not all(strings)


def fill_en() -> None:
    catalog = _load("en")
    for message in catalog:
        if message.id and _untranslated(message):
            message.string = message.id
        message.flags.discard("fuzzy")
    _save("en", catalog)


def missing(lang: str) -> None:
    catalog = _load(lang)
    todo = [m.id for m in catalog if m.id and (_untranslated(m) or "fuzzy" in m.flags)]
    print(json.dumps(todo, ensure_ascii=False, indent=1))


def apply(lang: str, source: str) -> None:
    translations = json.loads(Path(source).read_text(encoding="utf-8"))
    catalog = _load(lang)
    for message in catalog:
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        if key in translations:
            value = translations[key]
            message.string = tuple(value) if isinstance(value, list) else value
            message.flags.discard("fuzzy")
    _save(lang, catalog)


if __name__ == "__main__":
    import fcntl

    command, *args = sys.argv[1:]
    with (LOCALES / ".lock").open("a") as lock:  # the Makefile's extract takes the same lock
        if not os.environ.get("CATALOG_LOCKED"):
            fcntl.flock(lock, fcntl.LOCK_EX)
        {"fill-en": fill_en, "missing": missing, "apply": apply}[command](*args)
