"""Tab completion: ``watcher completion bash|zsh|fish`` and the ids it completes.

The scripts come from shtab, generated from the same argparse parser the command
uses, so they never fall behind a new option. SIM, source, channel and operator ids
come from the config: the scripts run the hidden ``watcher _complete KIND -- WORDS``,
which reads the ``-c FILE`` on the command line being completed (else
``$WATCHER_CONFIG``, else ``./watcher.yaml``) and prints one id a line.

Nothing here imports shtab or the config until a script or the ids are asked for:
this module is imported by every ``watcher`` command to build the parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watcher.config import LoadedConfig

SHELLS = ("bash", "zsh", "fish")
ID_KINDS = ("sims", "sources", "channels", "operators")
FILE = "file"  # a path: completed by the shell itself

# The word lists each shell hands over: the command itself first, as typed (so a
# `.venv/bin/watcher` not on PATH still completes), then every word, -c FILE included.
_BASH = """
# Ids from the config: `watcher _complete KIND -- WORDS` reads -c FILE from WORDS.
_watcher_ids() {
  compgen -W "$("${COMP_WORDS[0]}" _complete "$1" -- "${COMP_WORDS[@]}" 2>/dev/null)" -- "$2"
}
"""
_ZSH = """
# Ids from the config: `watcher _complete KIND -- WORDS` reads -c FILE from WORDS.
_watcher_ids() {
  local -a line ids
  line=(${(Q)${(z)BUFFER}})
  ids=(${(f)"$("${line[1]}" _complete "$1" -- "${line[@]}" 2>/dev/null)"})
  compadd -a ids
}
"""
_FISH = """
# Ids from the config: `watcher _complete KIND -- WORDS` reads -c FILE from WORDS.
function __watcher_ids
    set -l line (commandline -opc)
    $line[1] _complete $argv[1] -- $line 2>/dev/null
end
"""


def id_completer(kind: str) -> dict[str, object]:
    """shtab's ``action.complete`` for an argument completed with ``kind`` ids."""
    if kind not in ID_KINDS:
        raise ValueError(f"no ids of kind {kind!r}; known: {', '.join(ID_KINDS)}")
    return {
        "bash": f"_watcher_{kind}",
        "zsh": f"_watcher_{kind}",
        "fish": f"(__watcher_ids {kind})",
        "preamble": {
            "bash": f'{_BASH}_watcher_{kind}() {{ _watcher_ids {kind} "$1"; }}\n',
            "zsh": f"{_ZSH}_watcher_{kind}() {{ _watcher_ids {kind} }}\n",
            "fish": _FISH,
        },
    }


def completes(action: argparse.Action, kind: str) -> argparse.Action:
    """Mark an argument as completed with ``kind`` ids (or ``FILE``); returns it."""
    if kind not in (*ID_KINDS, FILE):
        raise ValueError(f"cannot complete {kind!r}; known: {', '.join((*ID_KINDS, FILE))}")
    action.completes = kind  # type: ignore[attr-defined]
    return action


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for ``shell``, for every public command and option."""
    import shtab

    for action in _actions(parser):
        kind = getattr(action, "completes", None)
        if kind is not None:
            action.complete = shtab.FILE if kind == FILE else id_completer(kind)  # type: ignore[attr-defined]
    text: str = shtab.complete(parser, shell=shell)
    return _once(text, shell)


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    found = list(parser._actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _actions(sub)
    return found


def _once(text: str, shell: str) -> str:
    # shtab adds an argument's preamble once per argument that uses it: the shared
    # helper would be defined several times over. Harmless, but noisy to read.
    shared = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}[shell]
    first = text.find(shared)
    if first < 0:
        return text
    end = first + len(shared)
    return text[:end] + text[end:].replace(shared, "")


def config_from_words(words: Sequence[str]) -> Path | None:
    """The ``-c FILE`` / ``--config FILE`` / ``--config=FILE`` in a command line, if any.

    Bash splits ``--config=FILE`` into three words at the ``=``; that form is read too.
    """
    found: Path | None = None
    for i, word in enumerate(words):
        if word in ("-c", "--config") and i + 1 < len(words):
            value = words[i + 1]
            if value == "=" and word == "--config" and i + 2 < len(words):
                value = words[i + 2]
            found = Path(value)
        elif word.startswith("--config="):
            found = Path(word.removeprefix("--config="))
        elif word.startswith("-c") and len(word) > 2 and not word.startswith("--"):
            found = Path(word[2:])
    return found


def ids(loaded: LoadedConfig, kind: str) -> list[str]:
    """The ids of ``kind`` in a loaded config, in the config's order."""
    config = loaded.config
    if kind == "sims":
        return [sim.id for _user, sim in config.sims()]
    if kind == "sources":
        return list(config.source_profiles())
    if kind == "channels":
        return list(config.channels)
    if kind == "operators":
        return known_operators(loaded)
    raise ValueError(f"no ids of kind {kind!r}; known: {', '.join(ID_KINDS)}")


def known_operators(loaded: LoadedConfig) -> list[str]:
    """Every operator id the catalogue describes or a promotion source names, sorted."""
    sources = {profile.source.operator for profile in loaded.config.source_profiles().values()}
    return sorted(set(loaded.catalogue.known_ids()) | {op for op in sources if op})
