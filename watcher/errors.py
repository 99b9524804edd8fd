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
    """The config file cannot be used. Carries every issue found, one line each.

    Its text (and :meth:`lines`) shows the first :attr:`SHOWN` of them and how many
    more there are: a file of 100,000 unknown keys is not 100,000 lines of output.
    """

    exit_code = 2
    SHOWN = 30

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """One line per issue, at most :attr:`SHOWN`, then "... and N more problems"."""
        shown = [str(issue) for issue in self.issues[: self.SHOWN]]
        more = len(self.issues) - len(shown)
        if more:
            shown.append(f"... and {more} more problem{'s' if more > 1 else ''}")
        return shown


class UsageError(WatcherError):
    """A command-line argument is wrong (unknown SIM id, missing period, ...)."""

    exit_code = 2


class DatabaseError(WatcherError):
    """The database cannot be opened, reached or migrated."""
