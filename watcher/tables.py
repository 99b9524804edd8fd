"""Tables for the terminal and for pipes: fitted to the width, ids and times never cut.

Every table command (``status``, ``sources``, ``promotions``, ``scrape``) describes its
columns here and prints through :func:`print_table`. Each column has a kind:

- ``ID``, ``WHEN`` and ``NUMBER`` cells are never wrapped, folded or shortened: the
  column is at least as wide as its longest line. A cell may hold several lines (an id
  over a masked number), each kept whole.
- ``TEXT`` cells (titles, errors, links) wrap at spaces and fold long words; every
  character is still printed, never an ellipsis.

On a terminal the table has a header rule and a title; through a pipe it is plain
aligned text with no box characters and no colour. Either way it fits the width
(the terminal's, else ``$COLUMNS``, else 80). When the unbreakable columns alone do not
fit, each row is printed as a card instead (the first column as its heading, then one
``label  value`` line per cell), which keeps every id whole at any width an id fits in.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["Column", "Kind", "print_table", "render_table"]

TEXT_MIN_WIDTH = 12  # a free-text column is not squeezed below this to make a table fit
# Between columns: rich's padding of one on each side, plus the box's (blank) divider.
_GAP_PLAIN = 2
_GAP_BOXED = 3
_CARD_INDENT = 2


class Kind(StrEnum):
    """How a column's cells may be broken to fit the width."""

    ID = "id"  # never broken
    WHEN = "when"  # a date or a time with its zone; never broken
    NUMBER = "number"  # right-aligned, never broken
    TEXT = "text"  # wraps and folds; every character kept


@dataclass(frozen=True)
class Column:
    """One column: its header, its kind, and whether only ``--wide`` shows it."""

    header: str
    kind: Kind = Kind.TEXT
    wide: bool = False

    @property
    def breakable(self) -> bool:
        return self.kind is Kind.TEXT


Cell = str | None  # None prints as an em dash


def print_table(
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    wide: bool = False,
    file: IO[str] | None = None,
) -> None:
    """Print ``rows`` under ``columns`` to stdout (or ``file``), fitted to its width."""
    import sys

    from rich.console import Console

    console = Console(file=file, highlight=False)
    if console.is_terminal:
        _print(console, title, columns, rows, wide=wide)
        return
    out = file or sys.stdout
    out.write(render_table(title, columns, rows, width=console.width, wide=wide))


def render_table(
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    width: int = 80,
    terminal: bool = False,
    wide: bool = False,
) -> str:
    """The text :func:`print_table` would print at ``width``; for tests and previews."""
    import io

    from rich.console import Console

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=terminal,
        color_system=None,
        highlight=False,
        legacy_windows=False,
    )
    _print(console, title, columns, rows, wide=wide)
    if terminal:
        return buffer.getvalue()
    # rich pads every line to the width; plain text for pipes ends where its text does.
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def _print(
    console: Console,
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    wide: bool,
) -> None:
    shown = [i for i, column in enumerate(columns) if wide or not column.wide]
    cols = [columns[i] for i in shown]
    cells = [[_cell(row[i]) for i in shown] for row in rows]
    width = console.width
    terminal = console.is_terminal
    if _needed_width(cols, cells, _GAP_BOXED if terminal else _GAP_PLAIN) > width:
        _print_cards(console, title, cols, cells, width)
        return
    from rich import box
    from rich.table import Table

    table = Table(
        title=title if terminal else None,
        box=box.SIMPLE_HEAD if terminal else None,
        show_edge=False,
        pad_edge=False,
        header_style="bold" if terminal else "",
        title_style="bold" if terminal else "",
    )
    for index, column in enumerate(cols):
        if column.breakable:
            table.add_column(column.header, overflow="fold")
        else:
            natural = max([_longest_line(c[index]) for c in cells], default=0)
            table.add_column(
                column.header,
                no_wrap=True,
                min_width=max(natural, 1),
                justify="right" if column.kind is Kind.NUMBER else "left",
            )
    for row in cells:
        table.add_row(*row)
    console.print(table, markup=False, highlight=False, crop=False, overflow="fold")


def _cell(value: Cell) -> str:
    return "—" if value is None or value == "" else value


def _longest_line(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in text.splitlines()), default=0)


def _needed_width(columns: Sequence[Column], cells: Sequence[Sequence[str]], gap: int) -> int:
    """The narrowest this table can be: unbreakable columns whole, text squeezed."""
    total = gap * (len(columns) - 1)
    for index, column in enumerate(columns):
        longest = max([_longest_line(row[index]) for row in cells], default=0)
        if column.breakable:
            header_word = max((len(word) for word in column.header.split()), default=1)
            total += max(min(longest, TEXT_MIN_WIDTH), header_word)
        else:
            total += max(longest, len(column.header))  # headers of these stay whole too
    return total


def _print_cards(
    console: Console,
    title: str,
    columns: Sequence[Column],
    cells: Sequence[Sequence[str]],
    width: int,
) -> None:
    """One block per row: the first cell as heading, then ``label  value`` lines."""
    label_width = max((len(column.header) for column in columns[1:]), default=0)
    lines: list[str] = []
    if console.is_terminal:
        lines.append(title)
    for row in cells:
        if lines:
            lines.append("")
        lines.extend(row[0].splitlines() or ["—"])
        for column, value in zip(columns[1:], row[1:], strict=True):
            lines.extend(_card_field(column, value, label_width, width))
    for line in lines:
        console.print(line, markup=False, highlight=False, crop=False, soft_wrap=True)


def _card_field(column: Column, value: str, label_width: int, width: int) -> list[str]:
    from rich.cells import cell_len

    lead = " " * _CARD_INDENT + column.header.ljust(label_width) + "  "
    room = width - len(lead)
    parts = value.splitlines() or [""]
    if column.breakable:
        parts = [
            piece
            for part in parts
            for line in textwrap.wrap(part, max(room, 10), break_long_words=True) or [""]
            for piece in _fold(line, max(room, 10))
        ]
    elif any(cell_len(part) > room for part in parts):
        # An unbreakable value too long beside its label goes on lines of its own.
        indent = " " * (_CARD_INDENT * 2)
        return [" " * _CARD_INDENT + column.header, *(indent + part for part in parts)]
    pad = " " * len(lead)
    return [lead + parts[0], *(pad + part for part in parts[1:])]


def _fold(line: str, width: int) -> list[str]:
    """``line`` cut into pieces at most ``width`` terminal cells wide (CJK counts two)."""
    from rich.cells import cell_len

    pieces = [""]
    for char in line:
        if pieces[-1] and cell_len(pieces[-1] + char) > width:
            pieces.append("")
        pieces[-1] += char
    return pieces
