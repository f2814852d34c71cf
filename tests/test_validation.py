"""Table tests of the Settings input rules (services/validation.py)."""

from __future__ import annotations

import pytest

from services.errors import ValidationFailed
from services.validation import (
    IpLineError,
    ip_allowed,
    normalize_phone,
    parse_ip_allowlist,
    validate_code_word,
    validate_email,
    validate_ip_allowlist,
    validate_name,
    validate_password,
    validate_text,
)


def _code(func, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationFailed) as info:
        func(*args, **kwargs)
    return info.value.detail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ivanov", "Ivanov"),
        ("  Иванов  ", "Иванов"),
        ("Salt-Petersen", "Salt-Petersen"),
        ("O'Brien", "O'Brien"),
        ("Anna   Maria", "Anna Maria"),
        ("a" * 100, "a" * 100),
    ],
)
def test_valid_names(text: str, expected: str) -> None:
    assert validate_name(text) == expected


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("Ivan0v", "name_chars"),
        ("<b>x</b>", "name_chars"),
        ("--", "name_chars"),
        ("a" * 101, "too_long"),
        ("a" * 5000, "too_long"),
    ],
)
def test_invalid_names(text: str, code: str) -> None:
    assert _code(validate_name, text) == code


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user@example.com", "user@example.com"),
        ("  First.Last+tag@Example.COM ", "First.Last+tag@example.com"),
        ("a@sub.domain.io", "a@sub.domain.io"),
        ("ivan@пример.рф", "ivan@xn--e1afmkfd.xn--p1ai"),
    ],
)
def test_valid_emails(text: str, expected: str) -> None:
    assert validate_email(text) == expected


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty"),
        ("user", "email_invalid"),
        ("user@", "email_invalid"),
        ("@example.com", "email_invalid"),
        ("user@localhost", "email_invalid"),
        ("a b@example.com", "email_invalid"),
        ("user@exa_mple.com", "email_invalid"),
        ("user@-example.com", "email_invalid"),
        ("user..dots@example.com", "email_invalid"),
        ("user@1.2.3.4", "email_invalid"),
        ("a" * 250 + "@x.io", "too_long"),
    ],
)
def test_invalid_emails(text: str, code: str) -> None:
    assert _code(validate_email, text) == code


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+7 912 345-67-89", "+79123456789"),
        ("+44 (20) 7946.0958", "+442079460958"),
        ("0049 30 123456", "+4930123456"),
        ("+12025550123", "+12025550123"),
    ],
)
def test_phones_are_normalised_to_e164(text: str, expected: str) -> None:
    assert normalize_phone(text) == expected


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty"),
        ("89123456789", "phone_no_country"),
        ("+7 912", "phone_invalid"),
        ("+0123456789", "phone_invalid"),
        ("+1234567890123456", "phone_invalid"),
        ("+7 912 abc 67 89", "phone_invalid"),
        ("call me", "phone_invalid"),
        ("+7" + "1" * 40, "too_long"),
    ],
)
def test_invalid_phones(text: str, code: str) -> None:
    assert _code(normalize_phone, text) == code


def test_telegram_contact_numbers_come_without_plus() -> None:
    assert normalize_phone("79123456789", assume_plus=True) == "+79123456789"


@pytest.mark.parametrize(
    ("field", "text", "required", "expected"),
    [
        ("city", " Saint  Petersburg ", True, "Saint Petersburg"),
        ("address", "Nevsky pr., 28, apt. 5", True, "Nevsky pr., 28, apt. 5"),
        ("postcode", "SW1A 1AA", False, "SW1A 1AA"),
        ("postcode", "", False, None),
        ("region", "   ", False, None),
        ("company_tax_id", "7701234567", True, "7701234567"),
        ("company_name", "ООО «Ромашка»", True, "ООО «Ромашка»"),
    ],
)
def test_valid_texts(field: str, text: str, required: bool, expected: str | None) -> None:
    assert validate_text(field, text, required=required) == expected


@pytest.mark.parametrize(
    ("field", "text", "code"),
    [
        ("city", "", "empty"),
        ("city", "x" * 101, "too_long"),
        ("address", "x" * 301, "too_long"),
        ("postcode", "12#45", "postcode_invalid"),
        ("company_tax_id", "12", "tax_id_invalid"),
        ("company_tax_id", "12$456", "tax_id_invalid"),
        ("city", "---", "text_chars"),
        ("city", "Zero\u200bwidth", "text_chars"),
    ],
)
def test_invalid_texts(field: str, text: str, code: str) -> None:
    assert _code(validate_text, field, text, required=True) == code


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short1", "password_short"),
        ("onlyletters", "password_weak"),
        ("1234567890", "password_weak"),
        ("with space 1", "password_spaces"),
        ("a1" * 65, "password_long"),
    ],
)
def test_password_rules(password: str, code: str) -> None:
    assert _code(validate_password, password) == code


def test_good_password_is_returned_unchanged() -> None:
    assert validate_password("Secret99!") == "Secret99!"


@pytest.mark.parametrize(("text", "code"), [("abc", "code_word_short"), ("x" * 65, "too_long")])
def test_code_word_rules(text: str, code: str) -> None:
    assert _code(validate_code_word, text) == code


def test_code_word_is_stripped() -> None:
    assert validate_code_word("  blue whale  ") == "blue whale"


# ---- the IP allow-list parser -----------------------------------------------------------------
IP_TABLE = [
    # (text, entries, errors as (line, reason))
    ("", [], []),
    ("\n  \n\t\n", [], []),
    (
        "192.15.3.2\n10.10.1.1\n192.168.0.1-192.168.0.10",
        ["192.15.3.2", "10.10.1.1", "192.168.0.1-192.168.0.10"],
        [],
    ),
    ("  10.0.0.1  ", ["10.0.0.1"], []),
    ("2001:DB8:0:0:0:0:0:1", ["2001:db8::1"], []),
    ("2001:db8::1-2001:db8::ff", ["2001:db8::1-2001:db8::ff"], []),
    ("10.0.0.1 - 10.0.0.5", ["10.0.0.1-10.0.0.5"], []),
    ("10.0.0.7-10.0.0.7", ["10.0.0.7"], []),
    ("10.0.0.1\n\n10.0.0.1\n10.0.0.2", ["10.0.0.1", "10.0.0.2"], []),  # duplicate dropped
    ("2001:db8::1\n2001:DB8:0::1", ["2001:db8::1"], []),  # duplicate after normalising
    ("10.0.0.9-10.0.0.1", [], [(1, "reversed_range")]),
    ("10.0.0.1-2001:db8::1", [], [(1, "mixed_versions")]),
    ("hello", [], [(1, "not_an_ip")]),
    ("256.1.1.1", [], [(1, "not_an_ip")]),
    ("10.0.0.1-", [], [(1, "not_an_ip")]),
    ("10.0.0.0/24", [], [(1, "cidr")]),
    (
        "1.2.3.4\nfoo\n\n5.6.7.8-5.6.7.1\n9.9.9.9",
        ["1.2.3.4", "9.9.9.9"],
        [(2, "not_an_ip"), (4, "reversed_range")],
    ),
    ("1" * 101, [], [(1, "too_long")]),
]


@pytest.mark.parametrize(("text", "entries", "errors"), IP_TABLE)
def test_ip_allowlist_parser(text: str, entries: list[str], errors: list[tuple[int, str]]) -> None:
    parsed, problems = parse_ip_allowlist(text)
    assert parsed == entries
    assert [(e.line, e.reason) for e in problems] == errors


def test_ip_error_keeps_the_line_text_short() -> None:
    _, problems = parse_ip_allowlist("x" * 60)
    assert problems == [IpLineError(1, "x" * 39 + "…", "not_an_ip")]


def test_ip_allowlist_has_a_size_limit() -> None:
    text = "\n".join(f"10.0.{i // 256}.{i % 256}" for i in range(101))
    assert _code(parse_ip_allowlist, text) == "ip_list_too_long"


def test_service_side_recheck_rejects_bad_entries() -> None:
    assert validate_ip_allowlist(["10.0.0.1", "10.0.0.1"]) == ["10.0.0.1"]
    assert _code(validate_ip_allowlist, ["10.0.0.2-10.0.0.1"]) == "ip_list_invalid"


@pytest.mark.parametrize(
    ("ip", "entries", "allowed"),
    [
        ("1.2.3.4", [], True),
        ("1.2.3.4", ["1.2.3.4"], True),
        ("192.168.0.5", ["192.168.0.1-192.168.0.10"], True),
        ("192.168.0.11", ["192.168.0.1-192.168.0.10"], False),
        ("2001:db8::5", ["2001:db8::1-2001:db8::ff"], True),
        ("2001:db8::5", ["192.168.0.1-192.168.0.10"], False),
        ("garbage", ["1.2.3.4"], False),
    ],
)
def test_ip_allowed(ip: str, entries: list[str], allowed: bool) -> None:
    assert ip_allowed(ip, entries) is allowed
