"""The import rules of ARCHITECTURE.md, checked on the source so they stay true."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What a room must never import (module prefixes).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "scrapers": ("watcher",),
    "watcher.errors": ("watcher.", "pydantic", "sqlalchemy", "apprise", "httpx"),
    "watcher.clock": ("watcher.", "pydantic", "sqlalchemy", "apprise", "httpx"),
    "watcher.durations": ("watcher.", "pydantic", "sqlalchemy", "apprise", "httpx"),
    "watcher.quiet": ("watcher.config", "watcher.db", "pydantic", "sqlalchemy", "httpx"),
    "watcher.reminders.rules": (
        "watcher.config",
        "watcher.db",
        "watcher.outbox",
        "pydantic",
        "sqlalchemy",
        "httpx",
        "selectolax",
        "scrapers",
    ),
    "watcher.validation": ("watcher.config", "watcher.catalogue", "watcher.db", "scrapers"),
    "watcher.catalogue": ("watcher.config", "watcher.db", "watcher.outbox", "scrapers"),
    "watcher.db": ("watcher.config", "watcher.outbox", "watcher.reminders", "watcher.promotions"),
    # `watcher status` and `watcher health` read through it to spare SQLAlchemy's import.
    "watcher.db.plain": ("watcher.", "sqlalchemy", "alembic", "pydantic"),
    "watcher.outbox": ("watcher.config", "watcher.reminders", "watcher.promotions", "scrapers"),
    "watcher.reminders": (
        "watcher.config",
        "watcher.promotions",
        "watcher.delivery",
        "watcher.app",
        "scrapers",
    ),
    "watcher.promotions": ("watcher.reminders", "watcher.delivery", "watcher.app"),
    "watcher.delivery": ("watcher.reminders", "watcher.promotions", "watcher.app", "scrapers"),
}
# Exceptions to a room's rule: watcher.errors imports nothing of watcher's itself.
ALLOWED: dict[str, tuple[str, ...]] = {
    "watcher.db.plain": ("watcher.errors",),  # a server it cannot reach: DatabaseError
}
# Only these build the object graph or run it.
TOP = ("watcher.app", "watcher.daemon", "watcher.cli")
MAY_IMPORT_TOP = {"watcher.daemon", "watcher.cli", "watcher.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any level (lazy imports inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


SOURCES = sorted([*(ROOT / "watcher").rglob("*.py"), *(ROOT / "scrapers").rglob("*.py")])
SOURCES = [path for path in SOURCES if "migrations" not in path.parts]


def matches(name: str, prefix: str) -> bool:
    return name == prefix.rstrip(".") or name.startswith(
        prefix if prefix.endswith(".") else prefix + "."
    )


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: module_name(path))
def test_each_module_keeps_to_the_imports_of_its_room(path: Path) -> None:
    name = module_name(path)
    imported = imports_of(path)
    for room, forbidden in FORBIDDEN.items():
        if not matches(name, room):
            continue
        allowed = ALLOWED.get(room, ())
        bad = sorted(
            i
            for i in imported
            for prefix in forbidden
            if matches(i, prefix) and not any(matches(i, ok) for ok in allowed)
        )
        assert not bad, f"{name} imports {bad}, which its room ({room}) may not"
    if name not in MAY_IMPORT_TOP:
        top = sorted(i for i in imported for prefix in TOP if matches(i, prefix) and i != name)
        assert not top, f"{name} imports {top}: only the daemon and the CLI may"


def test_the_rules_are_not_vacuous() -> None:
    # A rule whose room matches no module would pass forever.
    names = {module_name(path) for path in SOURCES}
    for room in FORBIDDEN:
        assert any(matches(name, room) for name in names), room


def test_importing_the_due_date_rules_pulls_in_no_model_database_or_http_library() -> None:
    code = (
        "import sys, watcher.reminders.rules, watcher.quiet\n"
        "heavy = ('pydantic', 'sqlalchemy', 'httpx', 'selectolax', 'apprise', 'yaml')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == "[]"
