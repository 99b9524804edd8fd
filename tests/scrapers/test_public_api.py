"""The package's public surface: everything public is exported, and nothing of watcher leaks in."""

import ast
import importlib
import inspect
from pathlib import Path

import scrapers

PACKAGE = Path(scrapers.__file__).parent


def test_all_lists_every_public_name_of_the_private_modules() -> None:
    exported = set(scrapers.__all__)
    for path in sorted(PACKAGE.glob("_*.py")):
        if path.name == "__init__.py":
            continue
        module = importlib.import_module(f"scrapers.{path.stem}")
        if hasattr(module, "__all__"):
            public = set(module.__all__)  # as declared, even when it is nothing
        else:
            public = {
                name
                for name, value in vars(module).items()
                if not name.startswith("_")
                and getattr(value, "__module__", None) == module.__name__
                and (inspect.isclass(value) or inspect.isfunction(value))
            }
        missing = public - exported
        assert not missing, f"{path.name} exports {sorted(missing)} but scrapers/__init__ does not"


def test_every_name_in_all_exists() -> None:
    for name in scrapers.__all__:
        assert hasattr(scrapers, name), name


def test_the_library_imports_nothing_from_watcher() -> None:
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("watcher"), path.name
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("watcher") for a in node.names), path.name
