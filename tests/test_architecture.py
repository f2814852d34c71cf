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


PACKAGES = ("bot", "handlers", "keyboards", "services")
# The composition root creates the embedded billing and migrates its database; nothing else
# outside services/embedded/ may know it exists (an external billing replaces it there).
EMBEDDED_ALLOWED = {"bot/factory.py", "bot/runners.py", "bot/__main__.py"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(path: Path, modules: set[str]) -> set[str]:
    """First-party modules imported when the module loads (or is type-checked): top-level
    statements and `if TYPE_CHECKING:` blocks, not imports deferred into functions."""
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module in modules:
                    found.add(node.module)
                for alias in node.names:  # `from package import module`
                    if f"{node.module}.{alias.name}" in modules:
                        found.add(f"{node.module}.{alias.name}")

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    paths = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {name: _module_level_imports(path, set(paths)) for name, path in paths.items()}
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    cycles: list[str] = []

    def walk(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                walk(target, [*trail, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    assert not cycles, "\n".join(cycles)


# The same for the WHMCS adapter: the composition root alone builds it.
WHMCS_ALLOWED = {"bot/factory.py", "bot/__main__.py", "bot/scheduler.py"}


@pytest.mark.parametrize(
    ("package", "allowed"),
    [("services.embedded", EMBEDDED_ALLOWED), ("services.whmcs", WHMCS_ALLOWED)],
)
def test_only_the_composition_root_knows_a_billing_implementation(
    package: str, allowed: set[str]
) -> None:
    home = package.replace(".", "/") + "/"
    violations = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(home) or relative in allowed:
                continue
            violations += [
                f"{relative} imports {name}"
                for name in _imports(path)
                if name == package or name.startswith(package + ".")
            ]
    assert not violations, "\n".join(violations)


def test_the_whmcs_adapter_never_reaches_into_the_embedded_billing() -> None:
    """It gets the bot's own database as a BillingGateway (the Protocol), never the classes."""
    violations = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "services/whmcs").rglob("*.py"))
        for name in _imports(path)
        if name.startswith("services.embedded")
    ]
    assert not violations, "\n".join(violations)


# ---- the two halves of the seam ----------------------------------------------------------------
def _methods(protocol: type) -> dict[str, object]:
    """The methods a Protocol declares, its bases' included."""
    return {
        name: member
        for klass in protocol.__mro__
        if klass.__module__.startswith("services.")
        for name, member in vars(klass).items()
        if callable(member) and not name.startswith("_")
    }


def test_the_seam_is_two_disjoint_halves() -> None:
    from services.billing import Billing, BillingCore, BotStore

    core, store = _methods(BillingCore), _methods(BotStore)
    assert core and store
    assert not set(core) & set(store), "a method belongs to one half only"
    assert set(_methods(Billing)) == set(core) | set(store), "Billing adds nothing of its own"


def test_billing_core_knows_nothing_of_the_bots_plumbing() -> None:
    """An external billing adapter implements BillingCore: no outbox, leases or broadcasts in
    its names, signatures or documentation."""
    import inspect

    from services.billing import BillingCore

    words = ("outbox", "lease", "broadcast", "newsletter_subscriber", "alert_mark", "enqueue")
    mentions = [
        f"{name} mentions {word!r}"
        for name, method in _methods(BillingCore).items()
        for word in words
        if word in inspect.getsource(method).lower()  # type: ignore[arg-type]
    ]
    assert not mentions, "\n".join(mentions)


def test_the_embedded_halves_fit_their_protocols() -> None:
    """The runtime side of `_fits_the_seam` (the type checker proves the signatures)."""
    from services.billing import BillingCore, BotStore
    from services.embedded.billing import EmbeddedCore, EmbeddedStore

    assert set(_methods(BillingCore)) <= set(dir(EmbeddedCore))
    assert set(_methods(BotStore)) <= set(dir(EmbeddedStore))
    assert not set(_methods(BotStore)) & set(dir(EmbeddedCore)), "the core keeps no bot state"
