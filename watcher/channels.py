"""The configured channels as delivery targets, and sending one message through Apprise.

A channel is a name with one or more Apprise URLs; each URL is a *target* (``name``
for the first, ``name#2``... for more), and a message goes to each target separately,
so a success on one is never repeated on another. Apprise is imported on the first
send, not when a config is loaded.

Each target keeps its Apprise clients for reuse (parsing a URL and building its
plugin cost more than many sends), one per send in flight: a client is never used by
two threads at once. Apprise's own pause between two sends through one plugin (a
generic 5.5 s for most) is switched off on these clients; the Deliverer paces sends
itself, per service, with :mod:`watcher.limits`, keeping a pause a plugin declares
for its service (Slack's 1.2 s, for one).
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from watcher.limits import Service
from watcher.masking import mask_url, scrub, url_secrets
from watcher.messages import Message

if TYPE_CHECKING:
    import apprise

CONSOLE_URL = "console://"
MAX_IDLE_CLIENTS = 1024  # clients kept for reuse (a few KiB each), least recent dropped

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
        self._lock = threading.Lock()
        # Clients not sending now, by URL, least recently used first.
        self._idle: OrderedDict[str, list[apprise.Apprise]] = OrderedDict()
        self._idle_count = 0
        self._services: dict[str, Service] = {}

    def __iter__(self) -> Iterator[str]:
        """Every target, in config order."""
        return iter(list(self._urls))

    def targets(self, name: str) -> list[str]:
        return [t for t in self._urls if t == name or t.startswith(f"{name}#")]

    def __contains__(self, target: object) -> bool:
        return target in self._urls

    def masked(self, target: str) -> str:
        return mask_url(self._urls[target])

    def service(self, target: str) -> Service | None:
        """What the delivery limits need to know of ``target`` (None: not configured)."""
        url = self._urls.get(target)
        if url is None:
            return None
        with self._lock:
            known = self._services.get(url)
        if known is None:
            client = self._borrow(url)
            try:
                known = _service_of(url, client[0] if len(client) else None)
            finally:
                self._give_back(url, client)
            with self._lock:
                self._services[url] = known
        return known

    def send(self, target: str, message: Message) -> SendResult:
        """Send one message to one target; never raises for a channel's failure."""
        url = self._urls.get(target)
        if url is None:
            return SendResult(False, f"channel {target!r} is no longer in the config")
        try:
            client = self._borrow(url)
        except Exception as exc:  # a plugin bug must not stop the other channels
            return _failure(f"{type(exc).__name__}: {exc}", url)
        try:
            result = client.notify(title=message.title, body=message.body)
        except Exception as exc:
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
        finally:
            self._give_back(url, client)
        return _failure(reason, url)

    def _borrow(self, url: str) -> apprise.Apprise:
        with self._lock:
            idle = self._idle.get(url)
            if idle:
                self._idle_count -= 1
                return idle.pop()
        return _client(url)

    def _give_back(self, url: str, client: apprise.Apprise) -> None:
        with self._lock:
            self._idle.setdefault(url, []).append(client)
            self._idle.move_to_end(url)
            self._idle_count += 1
            while self._idle_count > MAX_IDLE_CLIENTS:  # thousands of one-off targets
                _, dropped = self._idle.popitem(last=False)
                self._idle_count -= len(dropped)


def _failure(reason: str, url: str) -> SendResult:
    return SendResult(False, scrub(reason, url_secrets(url))[:500])


def _client(url: str) -> apprise.Apprise:
    """A client holding ``url``'s plugin, with Apprise's own pause between sends off."""
    import apprise

    client = apprise.Apprise(asset=_asset())
    client.add("console://" if url == CONSOLE_URL else url)
    for plugin in client:
        # An instance attribute: the class keeps its declared pause for _service_of.
        plugin.request_rate_per_sec = 0
    return client


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _service_of(url: str, plugin: Any) -> Service:
    """The facts :mod:`watcher.limits` works with, read from the target's plugin."""
    target = _digest(url)
    if plugin is None:  # a URL Apprise could not load: the send fails on its own
        return Service("other", target)
    protocols = _protocols(type(plugin))
    pause = _declared_pause(type(plugin))
    if "tgram" in protocols:
        token = str(getattr(plugin, "bot_token", "") or "")
        chats = tuple(
            str(chat[0] if isinstance(chat, tuple) else chat)
            for chat in getattr(plugin, "targets", None) or ()
        )
        return Service("telegram", target, account=_digest(token), chats=chats, pause=pause)
    port = getattr(plugin, "port", None)
    port = port if isinstance(port, int) else None
    if protocols & {"mailto", "mailtos"}:
        host = getattr(plugin, "smtp_host", None) or getattr(plugin, "host", None)
        return Service("email", target, host=host, port=port, pause=pause)
    host = getattr(plugin, "host", None)
    host = host if isinstance(host, str) else None
    return Service("other", target, host=host, port=port, pause=pause)


def _protocols(cls: type) -> set[str]:
    found: set[str] = set()
    for attribute in ("protocol", "secure_protocol"):
        value = getattr(cls, attribute, None)
        if isinstance(value, str):
            found.add(value.lower())
        elif isinstance(value, (tuple, list)):
            found.update(str(v).lower() for v in value)
    return found


def _declared_pause(cls: type) -> float:
    """The pause between two sends that ``cls`` declares for its service, else 0.

    Apprise's NotifyBase sets a generic 5.5 s for plugins that declare none; that one
    is a default, not a service's rule, so it is not kept.
    """
    for klass in cls.__mro__:
        if klass.__name__ in ("NotifyBase", "URLBase"):
            return 0.0
        if "request_rate_per_sec" in vars(klass):
            value = vars(klass)["request_rate_per_sec"]
            return float(value) if isinstance(value, (int, float)) and value > 0 else 0.0
    return 0.0


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
