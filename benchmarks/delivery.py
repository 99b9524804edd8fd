"""Benchmark 3: delivery throughput to a local webhook receiver, at 20 ms and 200 ms.

Messages go to an Apprise ``json://127.0.0.1:PORT/hook`` receiver
(:mod:`benchmarks._receiver`, a ThreadingHTTPServer in its own process) that answers
each request after a fixed latency, the way a remote notification service would: 20 ms,
then 200 ms (a receiver process for each).

- **Deliverer**: the project's concurrent sender, as shipped: built with
  ``Deliverer(database, loaded, FixedClock(NOW))`` and no concurrency argument, so it
  runs with the daemon's default. The messages are put in a SQLite outbox first with
  :func:`watcher.outbox.enqueue` (kind ``admin``, title and body set, so nothing is
  rendered) and sent by one ``deliver_due()`` call.
- **Sequential Apprise**: the plain loop a script would be, once per message:
  ``apprise.Apprise()``, ``add(url)``, ``notify(...)``. Its rate is steady from the
  first message, so it sends fewer messages than the Deliverer, which needs enough to
  reach its steady state (at 200 ms the loop does 5 a second).
- **Replicas** (PostgreSQL only, see :mod:`benchmarks._replicas`): 1, 2 and 3 sender
  processes (:mod:`benchmarks._sender`) share one pre-filled outbox; timed from the
  go, given once all are connected and warmed up, to the last message answered.

The receiver counts every message by its (unique) title, so a lost or doubled message
shows up. Aims (issue 10): the Deliverer at least 10x the sequential rate at 20 ms and
50x at 200 ms. Replicas have no aim: their ratios are printed for comparison.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from benchmarks._common import NOW, Options, Result

if TYPE_CHECKING:
    from benchmarks._replicas import Scratch

NAME = "delivery"
TITLE = "Delivery throughput: Deliverer vs sequential Apprise, and replicas"


@dataclass(frozen=True)
class Setting:
    """One latency and its sizes: (full, quick) message counts for each contender."""

    latency: float  # seconds per request at the receiver
    aim: float  # least ratio Deliverer / sequential
    deliverer: tuple[int, int]
    sequential: tuple[int, int]
    replicas: tuple[int, int]  # shared by the replicas, for each replica count

    @property
    def name(self) -> str:
        return f"{self.latency * 1000:.0f} ms"


SETTINGS = (
    Setting(0.020, 10.0, deliverer=(2_000, 300), sequential=(600, 150), replicas=(2_000, 600)),
    Setting(0.200, 50.0, deliverer=(3_000, 800), sequential=(40, 15), replicas=(3_000, 600)),
)
REPLICA_COUNTS = (1, 2, 3)


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
        if self.process.stdout is not None:
            self.process.stdout.close()


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
    sender_cpu: float  # CPU seconds of the sending process(es), all threads, during the run
    receiver_cpu: float  # CPU seconds the receiver process spent meanwhile
    split: tuple[int, ...] = ()  # replicas: how many each sender process sent
    concurrency: str = ""  # replicas: each one's Deliverer.concurrency ("8", or "8/16")

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

    def minus(self, before: Cpu) -> tuple[float, float]:
        """(sender, receiver) CPU seconds from ``before`` to this."""
        return self.sender - before.sender, self.receiver - before.receiver


def check(
    label: str,
    seconds: float,
    sent: int,
    expected: list[str],
    receiver: Receiver,
    sender_cpu: float,
    receiver_cpu: float,
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
        sender_cpu=sender_cpu,
        receiver_cpu=receiver_cpu,
    )


def run_deliverer(work_dir: Path, url: str, messages: list[str], receiver: Receiver) -> Run:
    """Enqueue every message, then time ``deliver_due()`` passes until one sends nothing
    (one pass sends them all today; the second finds nothing)."""
    from sqlalchemy import func, select

    from watcher.clock import FixedClock
    from watcher.config import parse_config
    from watcher.db.engine import open_database
    from watcher.db.models import OutboxRow
    from watcher.delivery import Deliverer, DeliveryReport
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
            report = DeliveryReport()
            cpu_before = Cpu.now(receiver)
            started = time.perf_counter()
            while True:
                sent_now = deliverer.deliver_due()
                report += sent_now
                if not (sent_now.sent or sent_now.failed or sent_now.dead):
                    break
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
    return check(label, seconds, sent, messages, receiver, *cpu_after.minus(cpu_before))


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
    return check(
        "sequential Apprise", seconds, sent, expected, receiver, *cpu_after.minus(cpu_before)
    )


def run_replicas(
    scratch: Scratch, count: int, url: str, messages: list[str], receiver: Receiver
) -> Run:
    """``count`` sender processes share the outbox, filled afresh with ``messages``;
    timed from the go to the last message answered."""
    from benchmarks._replicas import run_senders

    scratch.fill(messages)
    receiver.reset()
    receiver_cpu = float(receiver.stats()["cpu"])
    go, reports = run_senders(count, scratch.url, url)
    stats = receiver.stats()
    last = stats["last"]
    seconds = float(last) - go if last is not None else max(float(r["seconds"]) for r in reports)
    concurrency = sorted({int(r["concurrency"]) for r in reports})
    label = f"{count} replica" + ("s" if count > 1 else "")
    run = check(
        label,
        seconds,
        min(sum(int(r["sent"]) for r in reports), scratch.marked_sent()),
        messages,
        receiver,
        sum(float(r["cpu"]) for r in reports),
        float(stats["cpu"]) - receiver_cpu,
    )
    return replace(
        run,
        split=tuple(int(r["sent"]) for r in reports),
        concurrency="/".join(map(str, concurrency)),
    )


@dataclass
class Measured:
    """Everything measured at one latency."""

    setting: Setting
    concurrent: Run
    sequential: Run
    replicas: list[Run]
    replicas_failed: str | None = None  # why the replicas stopped short, if they did


def measure(setting: Setting, options: Options, scratch: Scratch | None) -> Measured:
    """Run the contenders, then the replicas if there is a database, at one latency."""
    import apprise

    size = 1 if options.quick else 0
    receiver = Receiver(setting.latency)
    try:
        url = receiver.url()
        # Apprise loads its plugins on first use; neither contender should pay for that.
        apprise.Apprise.instantiate(url)
        options.log(f"{setting.name}: receiver on 127.0.0.1:{receiver.port}")
        count = setting.deliverer[size]
        options.log(f"{setting.name}: Deliverer, {count:,} messages")
        concurrent = run_deliverer(
            options.work_dir, url, titles(f"deliverer {setting.name}", count), receiver
        )
        count = setting.sequential[size]
        options.log(
            f"{setting.name}: Deliverer {concurrent.seconds:.1f} s; sequential loop, "
            f"{count:,} messages"
        )
        receiver.reset()
        sequential = run_sequential(url, titles(f"sequential {setting.name}", count), receiver)
        measured = Measured(setting, concurrent, sequential, [])
        if scratch is None:
            return measured
        count = setting.replicas[size]
        for replicas in REPLICA_COUNTS:
            options.log(f"{setting.name}: {replicas} replica(s) on PostgreSQL, {count:,} messages")
            try:
                measured.replicas.append(
                    run_replicas(
                        scratch,
                        replicas,
                        url,
                        titles(f"replicas {replicas} {setting.name}", count),
                        receiver,
                    )
                )
            except Exception as exc:
                measured.replicas_failed = f"{replicas} replica(s): {_one_line(exc)}"
                break
        return measured
    finally:
        receiver.stop()


def _one_line(exc: BaseException) -> str:
    """An error in one line, without a URL's password (SQLAlchemy errors quote no URL)."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        detail = str(exc.orig).strip().splitlines()
        return f"{type(exc.orig).__name__}: {detail[0] if detail else ''}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def run(options: Options) -> Result:
    """At each latency: the Deliverer against the sequential loop, then the replicas."""
    from benchmarks._replicas import SCHEMA, Refused, Scratch, postgres_url

    result = Result(NAME, TITLE)
    scratch: Scratch | None = None
    replicas_line: tuple[str, bool | None]
    target = postgres_url()
    if target is None:
        replicas_line = (
            "skipped: neither WATCHER_BENCH_POSTGRES_URL nor WATCHER_TEST_POSTGRES_URL is set",
            None,
        )
    else:
        url, variable = target
        try:
            scratch = Scratch(url)
        except Refused as exc:
            replicas_line = (f"refused: {exc}", False)
        except Exception as exc:
            replicas_line = (f"could not start: {_one_line(exc)}", False)
        else:
            replicas_line = (f"schema {SCHEMA}, from {variable}", None)
            result.notes.append(f"Replicas ran on {scratch.display}, schema {SCHEMA}.")
    try:
        measured = [measure(setting, options, scratch) for setting in SETTINGS]
    finally:
        if scratch is not None:
            scratch.close(drop=not options.keep_work)

    value, ok = replicas_line
    result.add("replicas on PostgreSQL", value, "", ok)
    for one in measured:
        _report(result, one)
    result.notes += [
        "The receiver is a ThreadingHTTPServer in a separate process on 127.0.0.1; it "
        "sleeps the latency before answering each request. Apprise opens a new connection "
        "per notification in every contender.",
        "Single process: the Deliverer on a SQLite outbox in this process, timed over its "
        "deliver_due() passes; its CPU is this process's. Replicas: each a `python -m "
        "benchmarks._sender` process on one PostgreSQL outbox, timed from the go (given "
        "once all are connected and warmed up) to the last message answered; their CPU is "
        "the senders' summed (the PostgreSQL server's is not counted).",
    ]
    return result


def _report(result: Result, measured: Measured) -> None:
    setting, concurrent, sequential = measured.setting, measured.concurrent, measured.sequential
    at = setting.name
    ratio = concurrent.rate / sequential.rate
    result.add(f"latency {at}", "")
    for contender in (concurrent, sequential):
        result.add(
            f"  {contender.label}",
            f"{contender.rate:,.1f} msg/s ({contender.sent:,} sent in {contender.seconds:.2f} s)",
        )
    result.add(
        f"  ratio Deliverer / sequential, {at}",
        f"{ratio:.1f}x",
        f">= {setting.aim:.0f}x",
        ratio >= setting.aim,
    )
    for name, contender in (("Deliverer", concurrent), ("sequential", sequential)):
        result.add(f"  CPU per message, {name}", _cpu_per_message(contender, "sender"))
    # With every core busy and nothing else to do, the machine cannot deliver more than
    # cores / (CPU per message): the most any sender could reach here, however built.
    cores = len(os.sched_getaffinity(0))
    for name, contender in (("the Deliverer's", concurrent), ("Apprise's own", sequential)):
        ceiling = cores / contender.cpu_per_message
        result.add(
            f"  CPU ceiling at {name} cost, {cores} cores",
            f"{ceiling:,.0f} msg/s = {ceiling / sequential.rate:.1f}x",
        )
    for name, contender in (("Deliverer", concurrent), ("sequential", sequential)):
        _exactly_once(result, f"  exactly once, {at}, {name}", contender)
    if measured.replicas:
        one = measured.replicas[0]
        result.add(
            f"  replicas, {at}", f"{one.expected:,} messages, concurrency {one.concurrency} each"
        )
    for replica in measured.replicas:
        result.add(
            f"    {replica.label}",
            f"{replica.rate:,.1f} msg/s = {replica.rate / sequential.rate:.1f}x sequential, "
            f"{replica.rate / measured.replicas[0].rate:.2f}x 1 replica",
        )
        result.add(
            "      sent (by each), time",
            f"{replica.sent:,} ({' + '.join(f'{n:,}' for n in replica.split)}) "
            f"in {replica.seconds:.2f} s",
        )
        result.add("      CPU per message", _cpu_per_message(replica, "senders"))
        _exactly_once(result, f"      exactly once, {at}, {replica.label}", replica)
    if measured.replicas_failed:
        result.add(f"  replicas, {at}", f"failed at {measured.replicas_failed}", "", False)


def _cpu_per_message(run: Run, sender: str) -> str:
    return (
        f"{run.sender_cpu / run.expected * 1000:.2f} ms {sender} + "
        f"{run.receiver_cpu / run.expected * 1000:.2f} ms receiver"
    )


def _exactly_once(result: Result, label: str, run: Run) -> None:
    result.add(
        label,
        f"{run.delivered_once:,}/{run.expected:,}; missing {run.missing}, "
        f"doubled {run.duplicated}, stray {run.stray}",
        "all once",
        run.exact,
    )
