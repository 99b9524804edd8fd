"""Standard output that a closed pipe cannot break: ``watcher status | head -1``.

When the reader goes away, Python raises ``BrokenPipeError`` at the next write or
flush, and once more at exit when it flushes ``sys.stdout``. A command whose output
nobody reads any more should still finish its work and exit with its own status, so
the rest of its output is dropped quietly instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import IO, Any, cast


class _Stdout:
    """Wraps a text stream; after the first ``BrokenPipeError`` writes go nowhere."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._closed()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._closed()

    def _closed(self) -> None:
        self.broken = True
        # The interpreter flushes the real stdout once more at exit, with whatever is
        # still buffered: give that flush somewhere to go.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._stream.fileno())
            finally:
                os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def closed_pipe_is_quiet() -> Iterator[None]:
    """Run the block with a ``sys.stdout`` that drops output once its reader is gone."""
    original = sys.stdout
    wrapper = _Stdout(original)
    sys.stdout = cast(IO[str], wrapper)
    try:
        yield
    finally:
        wrapper.flush()  # here, not at exit: a SystemExit (from --help) comes through too
        sys.stdout = original
