"""One replica for the delivery benchmark: a sender process of its own on a shared database.

Run as ``python -m benchmarks._sender CHANNEL_URL`` with the database URL in
``$WATCHER_BENCH_SENDER_URL`` (the environment, not the argument list, so a password
never shows in ``ps``). The outbox must already hold the messages, for the channel
``hook``, due at :data:`benchmarks._common.NOW`.

The protocol with :mod:`benchmarks._replicas`, one line each way:

1. Once imported, connected and warmed up (Apprise's plugins loaded), it prints
   ``ready``: none of that start-up is what the benchmark measures.
2. It waits for a line ``go`` on standard input (anything else, or end of input: it
   leaves without sending).
3. Its ``Deliverer`` (built before ``ready``, with the shipped defaults) calls
   ``deliver_due()`` until a pass sends nothing; then it prints one JSON line:
   ``sent``, ``failed``, ``dead``, ``passes``, ``concurrency``, ``cpu`` (this
   process's CPU seconds from the go) and ``seconds`` (wall time from the go).
"""

from __future__ import annotations

import json
import os
import sys
import time

URL_VARIABLE = "WATCHER_BENCH_SENDER_URL"


def main() -> int:
    import apprise

    from benchmarks._common import NOW
    from watcher.clock import FixedClock
    from watcher.config import parse_config
    from watcher.db.engine import open_database
    from watcher.delivery import Deliverer, DeliveryReport

    channel = sys.argv[1]
    database = open_database(os.environ[URL_VARIABLE])  # the parent migrated: one SELECT
    try:
        loaded = parse_config(f"channels: {{hook: '{channel}'}}", "bench.yaml", {})
        apprise.Apprise.instantiate(channel)  # loads the plugins, as the daemon's start does
        deliverer = Deliverer(database, loaded, FixedClock(NOW))
        try:
            print("ready", flush=True)
            if sys.stdin.readline().strip() != "go":
                return 1  # the parent gave up on the run
            cpu, started = time.process_time(), time.perf_counter()
            total, passes = DeliveryReport(), 0
            while True:
                report = deliverer.deliver_due()
                passes += 1
                total += report
                if not (report.sent or report.failed or report.dead):
                    break
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu
        finally:
            deliverer.close()
    finally:
        database.close()
    outcome = {
        "sent": total.sent,
        "failed": total.failed,
        "dead": total.dead,
        "passes": passes,
        "concurrency": deliverer.concurrency,
        "cpu": cpu,
        "seconds": seconds,
    }
    print(json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
