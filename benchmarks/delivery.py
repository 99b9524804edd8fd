"""Benchmark 3: delivery throughput to a local webhook receiver.

N messages (2,000; 300 with ``--quick``) go to an Apprise ``json://127.0.0.1:PORT/hook``
receiver (:mod:`benchmarks._receiver`, a ThreadingHTTPServer in its own process) that
answers each request after 20 ms, the way a remote notification service would.

- **Deliverer**: the project's concurrent sender. The messages are put in the outbox
  first with :func:`watcher.outbox.enqueue` (kind ``admin``, title and body set, so
  nothing is rendered) and sent by one ``Deliverer.deliver_due()`` call with a
  ``FixedClock``, with the concurrency the daemon uses.
- **Sequential Apprise**: the plain loop a script would be, once per message:
  ``apprise.Apprise()``, ``add(url)``, ``notify(...)``.

Both run in the same process against the same receiver, one after the other; the
receiver counts every message by its (unique) title, so a lost or doubled message
shows up. Target (from the issue): the Deliverer at least 10x the sequential rate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from benchmarks._common import NOW, Options, Result

NAME = "delivery"
TITLE = "Delivery throughput: Deliverer vs sequential Apprise"

FULL_MESSAGES = 2_000
QUICK_MESSAGES = 300
LATENCY = 0.020  # seconds per request at the receiver
MIN_RATIO = 10.0


class Receiver:
    """The receiver process: started here, stopped here."""

    def __init__(self, latency: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._receiver", "--latency", str(latency)],
            stdout=subprocess.PIPE,
            text=True,
        )
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"the webhook receiver did not start (said {line!r})")
        self.port = int(line)

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            method=method,
            data=b"" if method == "POST" else None,
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._call("GET", "/_stats")
        return stats

    def reset(self) -> None:
        self._call("POST", "/_reset")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass(frozen=True)
class Run:
    """One contender's run: how long, how many the sender thought it sent, what arrived."""

    label: str
    seconds: float
    sent: int
    expected: int
    delivered_once: int
    missing: int
    duplicated: int
    stray: int
    sender_cpu: float  # CPU seconds of this process (all threads) during the run
    receiver_cpu: float  # CPU seconds the receiver process spent meanwhile

    @property
    def cpu_per_message(self) -> float:
        """Sender plus receiver CPU seconds per message."""
        return (self.sender_cpu + self.receiver_cpu) / self.expected

    @property
    def rate(self) -> float:
        return self.expected / self.seconds

    @property
    def exact(self) -> bool:
        return (
            self.sent == self.expected
            and self.delivered_once == self.expected
            and not (self.missing or self.duplicated or self.stray)
        )


def titles(tag: str, count: int) -> list[str]:
    return [f"SIM Watcher benchmark {tag} #{i:05d}" for i in range(count)]


@dataclass(frozen=True)
class Cpu:
    """CPU seconds used so far by this process and by the receiver."""

    sender: float
    receiver: float

    @staticmethod
    def now(receiver: Receiver) -> Cpu:
        return Cpu(time.process_time(), float(receiver.stats()["cpu"]))


def check(
    label: str,
    seconds: float,
    sent: int,
    expected: list[str],
    receiver: Receiver,
    cpu_before: Cpu,
    cpu_after: Cpu,
) -> Run:
    """Compare what the receiver counted with what should have arrived exactly once."""
    counts: dict[str, int] = receiver.stats()["titles"]
    wanted = set(expected)
    return Run(
        label=label,
        seconds=seconds,
        sent=sent,
        expected=len(expected),
        delivered_once=sum(1 for t in expected if counts.get(t) == 1),
        missing=sum(1 for t in expected if t not in counts),
        duplicated=sum(1 for t in expected if counts.get(t, 0) > 1),
        stray=sum(n for t, n in counts.items() if t not in wanted),
        sender_cpu=cpu_after.sender - cpu_before.sender,
        receiver_cpu=cpu_after.receiver - cpu_before.receiver,
    )


def run_deliverer(work_dir: Path, url: str, messages: list[str], receiver: Receiver) -> Run:
    """Enqueue every message, then time one ``deliver_due()`` that sends them all."""
    from sqlalchemy import func, select

    from watcher.clock import FixedClock
    from watcher.config import parse_config
    from watcher.db.engine import open_database
    from watcher.db.models import OutboxRow
    from watcher.delivery import Deliverer
    from watcher.outbox import Kind, NewMessage, enqueue

    path = work_dir / "delivery.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    database = open_database(f"sqlite:///{path}")
    try:
        with database.session() as session:
            enqueue(
                session,
                [
                    NewMessage(f"bench:{i}", "hook", Kind.ADMIN, title=title, body=f"message {i}")
                    for i, title in enumerate(messages)
                ],
                NOW,
            )
        loaded = parse_config(f"channels: {{hook: '{url}'}}", "bench.yaml", {})
        deliverer = Deliverer(database, loaded, FixedClock(NOW))
        try:
            cpu_before = Cpu.now(receiver)
            started = time.perf_counter()
            report = deliverer.deliver_due()
            seconds = time.perf_counter() - started
            cpu_after = Cpu.now(receiver)
        finally:
            deliverer.close()
        with database.session() as session:
            marked = session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "sent")
            )
    finally:
        database.close()
    label = f"Deliverer, concurrency {deliverer.concurrency}"
    sent = min(report.sent, marked or 0)
    return check(label, seconds, sent, messages, receiver, cpu_before, cpu_after)


def run_sequential(url: str, messages: Iterable[str], receiver: Receiver) -> Run:
    """The plain loop: a new Apprise object per message, one notify at a time."""
    import apprise

    expected = list(messages)
    sent = 0
    cpu_before = Cpu.now(receiver)
    started = time.perf_counter()
    for i, title in enumerate(expected):
        client = apprise.Apprise()
        client.add(url)
        sent += bool(client.notify(title=title, body=f"message {i}"))
    seconds = time.perf_counter() - started
    cpu_after = Cpu.now(receiver)
    return check("sequential Apprise", seconds, sent, expected, receiver, cpu_before, cpu_after)


def run(options: Options) -> Result:
    """Start the receiver, run both contenders against it, compare their rates."""
    import apprise

    count = QUICK_MESSAGES if options.quick else FULL_MESSAGES
    receiver = Receiver(LATENCY)
    try:
        url = receiver.url()
        # Apprise loads its plugins on first use; neither contender should pay for that.
        apprise.Apprise.instantiate(url)
        options.log(f"receiver on 127.0.0.1:{receiver.port}, {LATENCY * 1000:.0f} ms per request")
        options.log(f"Deliverer: {count:,} messages")
        concurrent = run_deliverer(options.work_dir, url, titles("deliverer", count), receiver)
        options.log(f"Deliverer: {concurrent.seconds:.1f} s; now the sequential loop")
        receiver.reset()
        sequential = run_sequential(url, titles("sequential", count), receiver)
    finally:
        receiver.stop()

    ratio = concurrent.rate / sequential.rate
    result = Result(NAME, TITLE)
    result.add("messages per contender", f"{count:,}")
    result.add("receiver latency (simulated remote service)", f"{LATENCY * 1000:.0f} ms")
    for contender in (concurrent, sequential):
        result.add(
            contender.label,
            f"{contender.rate:,.1f} msg/s ({contender.seconds:.2f} s)",
        )
    result.add(
        "ratio Deliverer / sequential", f"{ratio:.1f}x", f">= {MIN_RATIO:.0f}x", ratio >= MIN_RATIO
    )
    for contender in (concurrent, sequential):
        result.add(
            f"  CPU per message: {contender.label}",
            f"{contender.sender_cpu / contender.expected * 1000:.2f} ms sender + "
            f"{contender.receiver_cpu / contender.expected * 1000:.2f} ms receiver",
        )
    # With every core busy and nothing else to do, the machine cannot deliver more than
    # cores / (CPU per message): the most any sender could reach here, however built.
    cores = len(os.sched_getaffinity(0))
    for name, contender in (("the Deliverer's", concurrent), ("Apprise's own", sequential)):
        ceiling = cores / contender.cpu_per_message
        result.add(
            f"  CPU ceiling at {name} cost, {cores} cores",
            f"{ceiling:,.0f} msg/s = {ceiling / sequential.rate:.1f}x",
        )
    for contender in (concurrent, sequential):
        result.add(
            f"  exactly once: {contender.label}",
            f"{contender.delivered_once:,}/{contender.expected:,}; missing {contender.missing}, "
            f"doubled {contender.duplicated}, stray {contender.stray}",
            "all once",
            contender.exact,
        )
    result.notes.append(
        "The receiver is a ThreadingHTTPServer in a separate process on 127.0.0.1; it "
        f"sleeps {LATENCY * 1000:.0f} ms before answering each request. Apprise opens a "
        "new connection per notification in both contenders."
    )
    return result
