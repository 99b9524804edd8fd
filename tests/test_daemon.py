"""The daemon as `make run` starts it: a reminder within seconds, then near-zero idle CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import wait_for

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    user, system = int(fields[11]), int(fields[12])  # utime, stime in clock ticks
    return (user + system) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_make_run_prints_a_reminder_within_seconds_then_idles(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "XDG_DATA_HOME": str(tmp_path),
        # As `make run` does, but in tmp_path rather than the example's config/demo.db.
        "WATCHER_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "PYTHONUNBUFFERED": "1",
    }
    out = (tmp_path / "stdout").open("w+")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "-c", str(ROOT / "config" / "example.yaml")],
        stdout=out,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert wait_for(lambda: "bob-beeline" in Path(out.name).read_text(), timeout=30)
        text = Path(out.name).read_text()
        assert "+7 705 *** ** 67" in text
        assert "+77051234567" not in text

        # Idle: both jobs ran; sample the CPU the process uses over a few quiet seconds.
        before = _cpu_seconds(daemon.pid)
        with pytest.raises(subprocess.TimeoutExpired):
            daemon.wait(timeout=5)  # real time passing is the point here; it must not exit
        used = _cpu_seconds(daemon.pid) - before
        assert used < 0.5, f"idle daemon used {used:.2f} s of CPU in 5 s"
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0
        out.close()
