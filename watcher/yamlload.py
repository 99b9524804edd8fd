"""Reading YAML a user wrote, within bounds: no alias bomb, cycle or giant number gets through.

PyYAML keeps an alias as a second reference to the same node, so a "billion laughs"
file is small in memory until something walks it as a tree; a self-referencing alias
(``users: &u [*u]``) is a cycle that every walker follows until ``RecursionError``.
The loader here composes the document itself, counting every node an alias would
repeat, and refuses a document that would expand past :data:`MAX_NODES` or refers to
itself, before anything is built from it. Integers are capped at :data:`MAX_DIGITS`
digits (Python refuses to read more than 4,300 anyway, with a bare ``ValueError``).

Errors are ``yaml.MarkedYAMLError`` with the line of the problem, so the config's
usual one-line YAML error reports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import Node, ScalarNode

__all__ = ["MAX_DIGITS", "MAX_NODES", "load"]

MAX_NODES = 400_000
"""Nodes a document may hold with every alias expanded (a 10,000-SIM config has ~190,000)."""

MAX_DIGITS = 100
"""Digits an integer may have; no setting needs more."""

try:
    from yaml._yaml import CParser as _Parser  # libyaml: scanning and parsing in C
except ImportError:  # PyYAML built without libyaml: the same in Python, slower

    class _Parser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


class _BoundedComposer(Composer):
    """Composer that counts expanded nodes and refuses an alias to a node still open.

    ``_sizes`` holds each finished node's expanded size, so an alias adds its node's
    whole size: ten aliases of a ten-leaf list count a hundred.
    """

    if TYPE_CHECKING:  # the parser's, mixed in below

        def check_event(self, *choices: type) -> bool: ...
        def peek_event(self) -> Any: ...

    def __init__(self) -> None:
        super().__init__()
        self._expanded = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None and id(node) not in self._sizes:
                raise yaml.composer.ComposerError(
                    None, None, "a YAML alias refers to itself", event.start_mark
                )
            if node is not None:
                self._count(self._sizes[id(node)], event.start_mark)
            return super().compose_node(parent, index)
        start = self._expanded
        mark = self.peek_event().start_mark
        self._count(1, mark)
        node = super().compose_node(parent, index)
        if node is not None:
            self._sizes[id(node)] = self._expanded - start
            node.end_mark = node.start_mark  # only the start is ever reported: half the marks
        return node

    def _count(self, nodes: int, mark: Any) -> None:
        self._expanded += nodes
        if self._expanded > MAX_NODES:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"the document expands to more than {MAX_NODES:,} values "
                "(aliases repeated too often?)",
                mark,
            )

    def compose_document(self) -> Node | None:
        node = super().compose_document()
        self._sizes = {}
        return node


class _Loader(_BoundedComposer, _Parser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """libyaml's parser (where PyYAML has it) under the bounded composer, safe constructors.

    Dates are left as text for the validators: PyYAML's own date constructor raises a
    bare ValueError on 2026-13-01 that would lose the field's path.
    """

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        _BoundedComposer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)

    # The C parser has its own composer; ours comes first in the MRO, and these say so.
    get_node = Composer.get_node
    check_node = Composer.check_node
    get_single_node = Composer.get_single_node


def _construct_int(loader: _Loader, node: ScalarNode) -> int:
    # Hex and binary digits count too: 0xfff... converts, but is too long to print.
    text = str(loader.construct_scalar(node))
    digits = sum(ch.isalnum() for ch in text.lower().removeprefix("-").lstrip("+0xob"))
    if digits > MAX_DIGITS:
        raise ConstructorError(
            None, None, f"a number of {digits:,} digits is too long", node.start_mark
        )
    try:
        return int(yaml.constructor.SafeConstructor.construct_yaml_int(loader, node))
    except ValueError:
        raise ConstructorError(None, None, "not a usable number", node.start_mark) from None


def _construct_text(loader: _Loader, node: ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)  # type: ignore[type-var]
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)  # type: ignore[type-var]


def load(text: str) -> Any:
    """Parse YAML text safely, within bounds; raises ``yaml.YAMLError``."""
    # Through yaml.load (not the same steps by hand): the config benchmark spies on it.
    return yaml.load(text, Loader=_Loader)  # type: ignore[arg-type]
