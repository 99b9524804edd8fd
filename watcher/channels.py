"""The configured channels as delivery targets, and sending one message through Apprise.

A channel is a name with one or more Apprise URLs; each URL is a *target* (``name``
for the first, ``name#2``... for more), and a message goes to each target separately,
so a success on one is never repeated on another. Apprise is imported on the first
send, not when a config is loaded.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from watcher.masking import mask_url, scrub, url_secrets
from watcher.messages import Message

if TYPE_CHECKING:
    import apprise

CONSOLE_URL = "console://"

__all__ = ["CONSOLE_URL", "Channels", "SendResult", "send_test", "target_names"]


@dataclass(frozen=True)
class SendResult:
    ok: bool
    error: str | None = None


def target_names(name: str, url_count: int) -> list[str]:
    """The targets of a channel with ``url_count`` URLs: ``name``, ``name#2``, ..."""
    return [name if i == 0 else f"{name}#{i + 1}" for i in range(url_count)]


class Channels:
    """The configured channels as delivery targets (``name``, ``name#2``...), via Apprise."""

    def __init__(self, channels: Mapping[str, list[str]]) -> None:
        self._urls: dict[str, str] = {}
        for name, urls in channels.items():
            for target, url in zip(target_names(name, len(urls)), urls, strict=True):
                self._urls[target] = url.strip()

    def targets(self, name: str) -> list[str]:
        return [t for t in self._urls if t == name or t.startswith(f"{name}#")]

    def __contains__(self, target: object) -> bool:
        return target in self._urls

    def masked(self, target: str) -> str:
        return mask_url(self._urls[target])

    def send(self, target: str, message: Message) -> SendResult:
        """Send one message to one target; never raises for a channel's failure."""
        url = self._urls.get(target)
        if url is None:
            return SendResult(False, f"channel {target!r} is no longer in the config")
        try:
            result = _client(url).notify(title=message.title, body=message.body)
        except Exception as exc:  # a plugin bug must not stop the other channels
            reason = f"{type(exc).__name__}: {exc}"
        else:
            try:
                if result:
                    return SendResult(True)
                # Apprise keeps each attempt's own log lines on its result.
                warnings = [
                    entry.message
                    for entry in result.logs()
                    if entry.level in ("WARNING", "ERROR", "CRITICAL")
                ]
            finally:
                result.close()
            reason = warnings[-1] if warnings else "the channel did not accept the message"
        return SendResult(False, scrub(reason, url_secrets(url))[:500])


def _client(url: str) -> apprise.Apprise:
    # A fresh client per send: Apprise throttles repeated sends through one plugin
    # instance (about 5 s apart for e-mail), which would serialise our workers.
    import apprise

    client = apprise.Apprise(asset=_asset())
    client.add("console://" if url == CONSOLE_URL else url)
    return client


_ASSET_LOCK = threading.Lock()


def _asset() -> apprise.AppriseAsset:
    # Under a lock: the first sends come from several workers at once, and the console
    # plugin must be registered with Apprise exactly once.
    with _ASSET_LOCK:
        return _build_asset()


@functools.cache
def _build_asset() -> apprise.AppriseAsset:
    import apprise
    from apprise.decorators import notify

    @notify(on="console", name="SIM Watcher console")  # type: ignore[untyped-decorator,no-untyped-call]
    def _console(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
        """The built-in ``console://`` channel: print to standard output."""
        print(f"== {title} ==\n{body}\n", flush=True)
        return True

    # async_mode=False: we run the workers. service_timeout=0: with a service timeout,
    # Apprise runs every send in its shared thread pool (min(32, cores + 4) threads, 6 on
    # two cores), which would cap our workers at that many and add a thread hand-off to
    # each message. A send stays bounded by its plugin's own socket timeouts (4 s connect
    # and read for HTTP services, 15 s for SMTP).
    return apprise.AppriseAsset(async_mode=False, service_timeout=0)


def send_test(
    channels: Channels, targets: list[str], message_for: Callable[[str], Message]
) -> dict[str, SendResult]:
    """Send one test message per target, directly (not through the outbox)."""
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(targets)))) as pool:
        futures = {
            target: pool.submit(channels.send, target, message_for(target)) for target in targets
        }
        return {target: future.result() for target, future in futures.items()}
