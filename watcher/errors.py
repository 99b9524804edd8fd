"""The exceptions SIM Watcher raises on purpose.

    WatcherError            -- root; the CLI prints it as one line, exit code 1
    ├── ConfigError         -- the config file is unreadable or invalid (exit code 2)
    ├── UsageError          -- a CLI argument names something that does not exist
    └── DatabaseError       -- the database cannot be reached or migrated

Anything else escaping to the CLI is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class WatcherError(Exception):
    """Root of every error SIM Watcher reports without a traceback."""

    exit_code = 1


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file: where it is and what is wrong."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class ConfigError(WatcherError):
    """The config file cannot be used. Carries every issue found, one line each."""

    exit_code = 2

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


class UsageError(WatcherError):
    """A command-line argument is wrong (unknown SIM id, missing period, ...)."""

    exit_code = 2


class DatabaseError(WatcherError):
    """The database cannot be opened, reached or migrated."""
