"""A webhook receiver on loopback that answers every POST after a fixed latency.

Run as ``python -m benchmarks._receiver --latency 0.02``: it prints its port on the
first line of standard output and serves until terminated. It stands in for a remote
notification service, so it runs in a process of its own and does not compete with
the sender for the GIL.

- ``POST <any path>``: an Apprise ``json://`` notification; counted by its title.
- ``GET /_stats``: ``{"requests": N, "titles": {title: count}, "cpu": seconds,
  "last": T}``, T the ``time.monotonic()`` when the last message was counted, after its
  latency, just before its answer (None before the first). Linux's monotonic clock is
  one clock for the whole machine, so another process can time "from the go to the
  last arrival" with it.
- ``POST /_reset``: forget everything counted so far.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Tally:
    """What arrived, counted by title; shared by the handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.titles: Counter[str] = Counter()
        self.last: float | None = None

    def record(self, title: str) -> None:
        arrived = time.monotonic()
        with self.lock:
            self.requests += 1
            self.titles[title] += 1
            self.last = arrived if self.last is None else max(self.last, arrived)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            # cpu: this process's CPU seconds so far, so the sender can tell what
            # each message cost the receiver.
            return {
                "requests": self.requests,
                "titles": dict(self.titles),
                "cpu": time.process_time(),
                "last": self.last,
            }

    def reset(self) -> None:
        with self.lock:
            self.requests = 0
            self.titles.clear()
            self.last = None


def make_server(latency: float, port: int = 0) -> ThreadingHTTPServer:
    """A ThreadingHTTPServer on 127.0.0.1 (a thread per connection) with its tally."""
    tally = Tally()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/_reset":
                tally.reset()
                self._reply(200, b"{}")
                return
            time.sleep(latency)  # the remote service thinking
            try:
                title = str(json.loads(body or b"{}").get("title", ""))
            except ValueError:
                title = "<not JSON>"
            tally.record(title)
            self._reply(200, b"")

        def do_GET(self) -> None:
            if self.path == "/_stats":
                self._reply(200, json.dumps(tally.snapshot()).encode())
            else:
                self._reply(404, b"")

        def _reply(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request would cost more than the request

    # Many senders connect at once: a deep accept queue, so none waits on a SYN retry.
    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._receiver")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per request")
    args = parser.parse_args()
    server = make_server(args.latency)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
