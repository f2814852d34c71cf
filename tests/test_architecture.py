"""The rooms of the house keep their doors: checked on the import graph of the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> module prefixes it must never import
FORBIDDEN = {
    # handlers may name the Settings type (bot.config), nothing else of the composition root
    "handlers": (
        "sqlalchemy",
        "services.embedded",
        "bot.factory",
        "bot.runners",
        "bot.middlewares",
        "bot.scheduler",
        "bot.commands",
    ),
    "keyboards": ("sqlalchemy", "services.embedded", "bot", "handlers", "aiohttp"),
    "services": ("handlers", "keyboards", "bot"),
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_forbidden_layers(package: str) -> None:
    violations = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[package]):
                violations.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not violations, "\n".join(violations)
