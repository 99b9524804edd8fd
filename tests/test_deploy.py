"""deploy/sim-watcher.service: a hardened unit that runs the daemon as the README says.

No systemd manages services here, so the unit is checked the ways that can run:
parsed, its command line parsed by the watcher's own argument parser, and (where
systemd-analyze exists) verified by systemd itself with the executable pointed at this
checkout's `watcher`.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from watcher.cli import _parser

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "sim-watcher.service"


def directives() -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service(key: str) -> str:
    return directives()["Service"][key][-1]


def test_the_service_runs_the_daemon_with_http_and_reloads_with_sighup() -> None:
    argv = shlex.split(service("ExecStart"))
    args = _parser().parse_args(argv[1:])

    assert Path(argv[0]).name == "watcher"
    assert args.command == "run" and not args.once
    assert args.http == ("127.0.0.1", 9100)
    assert service("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert service("Restart") == "on-failure"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DynamicUser", "yes"),
        ("StateDirectory", "sim-watcher"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
    ],
)
def test_the_service_is_hardened(key: str, value: str) -> None:
    assert service(key) == value


def test_the_database_lives_in_the_state_directory_and_stop_outlasts_the_grace() -> None:
    from watcher.daemon import SHUTDOWN_GRACE_SECONDS

    environment = dict(item.split("=", 1) for item in directives()["Service"]["Environment"])
    assert environment["WATCHER_DATABASE_URL"] == "sqlite:////var/lib/sim-watcher/watcher.db"
    assert service("TimeoutStopSec").removesuffix("s").isdigit()
    assert int(service("TimeoutStopSec").removesuffix("s")) > SHUTDOWN_GRACE_SECONDS


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    watcher = Path(sys.executable).with_name("watcher")
    if not watcher.exists():
        pytest.skip("no watcher executable beside this Python (install the project)")
    text = UNIT.read_text(encoding="utf-8").replace("/opt/sim-watcher/bin/watcher", str(watcher))
    unit = tmp_path / "sim-watcher.service"
    unit.write_text(text, encoding="utf-8")

    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )

    problems = [line for line in result.stderr.splitlines() if "sim-watcher.service" in line]
    assert result.returncode == 0 and not problems, result.stderr
