"""What a hoster deploys (issue 16): the Dockerfile, docker-compose.yml and .env.example, read
as files. Every variable the bot reads is a Settings field documented in .env.example, and
every .env.example or compose variable of the bot is one."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import yaml

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {name.upper() for name in Settings.model_fields}
SOURCES = ("bot", "handlers", "keyboards", "services")


def _stages(dockerfile: str) -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), one list per stage."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    lines = [line.strip() for line in joined.splitlines()]
    stages: list[list[str]] = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _example_variables() -> list[str]:
    """Every NAME=... line of .env.example, commented out or not."""
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    return re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE)


def test_the_image_is_multi_stage_non_root_with_catalogs_and_a_health_check() -> None:
    stages = _stages((ROOT / "Dockerfile").read_text(encoding="utf-8"))
    assert len(stages) >= 2, "multi-stage"
    build, runtime = stages[0], stages[-1]
    assert any("pybabel compile" in line for line in build if line.startswith("RUN"))
    assert any(line.startswith("COPY --from=") and "locales" in line for line in runtime)
    assert not any("pip install" in line for line in runtime), "dependencies come built"
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "runs as a user without privileges"
    [health] = [line for line in runtime if line.startswith("HEALTHCHECK ")]
    assert '"python", "-m", "bot", "healthcheck"' in health  # asks /healthz (bot/__main__.py)
    assert runtime[-1] == 'CMD ["python", "-m", "bot"]'


def test_the_build_context_leaves_out_secrets_and_local_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".env", ".git", ".venv", "data", "**/*.mo"} <= set(ignored)


def test_every_compose_service_has_a_health_check_and_the_bot_waits_for_them() -> None:
    services = _compose()["services"]
    assert [name for name, spec in services.items() if "healthcheck" not in spec] == []
    bot = services["bot"]
    assert bot["healthcheck"]["test"] == ["CMD", "python", "-m", "bot", "healthcheck"]
    others = set(services) - {"bot"}
    assert others, "PostgreSQL and Redis"
    assert bot["depends_on"] == {name: {"condition": "service_healthy"} for name in others}


def test_the_bots_compose_variables_are_settings() -> None:
    environment = _compose()["services"]["bot"]["environment"]
    assert sorted(set(environment) - SETTINGS) == []


def test_env_example_and_settings_name_the_same_variables() -> None:
    found = _example_variables()
    assert sorted(set(found) - SETTINGS) == [], "in .env.example but no setting"
    assert sorted(SETTINGS - set(found)) == [], "a setting missing in .env.example"


def _environment_reads(path: Path) -> list[str]:
    """Names read with os.environ[...], os.environ.get(...) or os.getenv(...) in one file."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        target: ast.expr | None = None
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            target = node.slice
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in (
            "os.environ.get",
            "os.getenv",
        ):
            target = node.args[0] if node.args else None
        if target is not None:
            found.append(ast.unparse(target))
    return found


def test_the_bot_reads_no_variable_besides_its_settings() -> None:
    """Configuration goes through bot/config.py's Settings (so through this file's checks)."""
    reads = {
        str(path.relative_to(ROOT)): names
        for folder in SOURCES
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (names := _environment_reads(path))
    }
    assert reads == {}
