"""Every message in the source is in both catalogs, translated, and its placeholders match."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"\{[a-z_]*\}")


def _catalog(lang: str):  # type: ignore[no-untyped-def]
    with (ROOT / "locales" / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=lang)


def _source_ids(tmp_path: Path) -> set[str]:
    pot = tmp_path / "current.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "__",
            "-k",
            "N_",
            "--no-location",
            "-o",
            str(pot),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with pot.open("rb") as f:
        catalog = read_po(f)
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_catalog_covers_every_source_string(lang: str, tmp_path: Path) -> None:
    catalog = _catalog(lang)
    have = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
    missing = _source_ids(tmp_path) - have
    assert not missing, f"{lang}: not in the catalog (run `make extract`): {sorted(missing)}"


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_every_entry_is_translated_with_the_same_placeholders(lang: str) -> None:
    problems = []
    for message in _catalog(lang):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings) or "fuzzy" in message.flags:
            problems.append(f"untranslated: {ids[0]!r}")
            continue
        expected = set(PLACEHOLDER.findall(ids[0]))
        for text in strings:
            if set(PLACEHOLDER.findall(text)) - expected - {"{count}"}:
                problems.append(f"placeholders differ: {ids[0]!r} -> {text!r}")
    assert not problems, "\n".join(problems)


def test_russian_plural_forms_are_declared() -> None:
    assert _catalog("ru").num_plurals == 3


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_every_message_is_valid_telegram_html(lang: str) -> None:
    """The bot sends with parse_mode=HTML: a bare '<' or an unclosed tag makes Telegram refuse
    the whole message ("can't parse entities")."""
    from tests.harness.telegram import ApiError, _visible_text

    problems = []
    for message in _catalog(lang):
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in strings:
            try:
                _visible_text(text)
            except ApiError as exc:
                problems.append(f"{text!r}: {exc.description}")
    assert not problems, "\n".join(problems)


def test_no_full_stop_after_a_russian_date() -> None:
    """Russian dates end in «г.» (1 дек. 2026 г.): a sentence ending in one needs no second
    full stop, or the customer reads «г..»."""
    date_then_stop = re.compile(r"\{[a-z_]*(date|until|day|at)\}\.")
    found = []
    for message in _catalog("ru"):
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        found += [text for text in strings if text and date_then_stop.search(text)]
    assert not found
