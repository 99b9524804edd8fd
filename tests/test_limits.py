"""Per-service delivery limits: which limits a target is under, and how they hold.

The rules are pure (time passed in); the targets' facts come from real Apprise
plugins parsing real URLs.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.channels import Channels
from watcher.limits import (
    SMTP_CONNECTIONS,
    TELEGRAM_API,
    TELEGRAM_CONNECTIONS,
    TELEGRAM_PER_BOT_PER_SECOND,
    Limit,
    Limiter,
    LimitKey,
    Override,
    Service,
    limits_of,
)

BOT = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def service(url: str) -> Service:
    found = Channels({"c": [url]}).service("c")
    assert found is not None
    return found


def kinds(url: str) -> dict[str, Limit]:
    return {key.kind: limit for key, limit in limits_of(service(url))}


# --- which limits a target is under ---------------------------------------------------


def test_a_telegram_bot_is_limited_as_a_whole_and_per_chat() -> None:
    keys = limits_of(service(f"tgram://{BOT}/998877/-1001234"))
    bot = [limit for key, limit in keys if key.kind == "telegram bot"]
    chats = {
        key.identity.split("/")[1]: limit for key, limit in keys if key.kind == "telegram chat"
    }
    assert bot == [Limit(TELEGRAM_CONNECTIONS, TELEGRAM_PER_BOT_PER_SECOND)]
    assert chats["998877"] == Limit(1, 1.0)  # a person: one a second
    assert chats["-1001234"] == Limit(1, 20 / 60)  # a group: twenty a minute


def test_two_channels_on_one_bot_share_the_bot_limit_but_not_a_chat_limit() -> None:
    first = limits_of(service(f"tgram://{BOT}/111"))
    second = limits_of(service(f"tgram://{BOT}/222"))
    assert {k for k, _ in first if k.kind == "telegram bot"} == {
        k for k, _ in second if k.kind == "telegram bot"
    }
    assert not {k for k, _ in first if k.kind == "telegram chat"} & {
        k for k, _ in second if k.kind == "telegram chat"
    }


def test_no_key_holds_a_secret() -> None:
    urls = [f"tgram://{BOT}/111", "mailto://user:hunter2@example.org", "json://u:pw@10.0.0.1/x"]
    for url in urls:
        for key, _ in limits_of(service(url)):
            text = repr(key)
            assert "AAHdqTcv" not in text and "hunter2" not in text and ":pw" not in text


def test_mail_is_limited_per_smtp_server_whoever_sends() -> None:
    alice = limits_of(service("mailto://alice:pw@gmail.com"))
    bob = limits_of(service("mailto://bob:pw@gmail.com"))
    assert alice == bob
    (key, limit), *_ = alice
    assert (key.kind, key.host, limit) == ("smtp", "smtp.gmail.com", Limit(SMTP_CONNECTIONS))
    other = limits_of(service("mailtos://u:p@mail.example.org:2525?smtp=smtp.other.org"))
    assert [(k.host, k.identity) for k, _ in other] == [("smtp.other.org", "smtp.other.org:2525")]


def test_a_plugin_pause_for_its_service_is_kept_and_apprise_generic_one_is_not() -> None:
    # Slack's plugin declares 1.2 s between two posts to one webhook; ntfy's declares
    # nothing and inherits Apprise's generic 5.5 s, which would make 1,000 messages
    # take an hour and a half.
    slack = kinds("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general")
    assert slack["target"].per_second == pytest.approx(1 / 1.2)
    assert "target" not in kinds("ntfy://127.0.0.1:8080/topic")
    assert "target" not in kinds("mailto://u:p@gmail.com")


def test_a_webhook_host_has_no_limit_of_its_own_until_the_config_gives_one() -> None:
    (key, limit), *rest = limits_of(service("json://127.0.0.1:8080/hook"))
    assert (key.kind, key.host, limit, rest) == ("host", "127.0.0.1", Limit(), [])
    limiter = Limiter({"127.0.0.1": Override(connections=2)})
    assert limiter.limit(key, limit) == Limit(2)


def test_the_console_channel_is_not_limited() -> None:
    assert limits_of(service("console://")) == []


def test_overrides_for_telegram_apply_to_each_bot_and_never_to_a_chat() -> None:
    limiter = Limiter({TELEGRAM_API: Override(per_second=5)})
    keys = limits_of(service(f"tgram://{BOT}/111"))
    in_force = {key.kind: limiter.limit(key, limit) for key, limit in keys}
    assert in_force["telegram bot"] == Limit(TELEGRAM_CONNECTIONS, 5)
    assert in_force["telegram chat"] == Limit(1, 1.0)


# --- how they hold ----------------------------------------------------------------------

HOST = LimitKey("host", "h:", "h")


def test_connections_are_a_cap_on_sends_in_flight() -> None:
    limiter = Limiter()
    keys = [(HOST, Limit(2))]
    for _ in range(2):
        assert limiter.wait(keys, 0.0) == 0
        limiter.start(keys)
    assert limiter.wait(keys, 100.0) == math.inf  # not time: a send must end
    limiter.finish(keys)
    assert limiter.wait(keys, 100.0) == 0


def test_a_rate_allows_one_second_of_burst_then_paces() -> None:
    limiter = Limiter()
    keys = [(HOST, Limit(None, 4))]
    for _ in range(4):
        assert limiter.wait(keys, 10.0) == 0
        limiter.start(keys)
        limiter.finish(keys)
    assert limiter.wait(keys, 10.0) == pytest.approx(0.25)
    assert limiter.wait(keys, 10.25) == 0


def test_replicas_each_take_their_share() -> None:
    limiter = Limiter()
    bot = (LimitKey("telegram bot", "x", TELEGRAM_API), Limit(8, 30))
    assert limiter.limit(*bot) == Limit(8, 30)
    limiter.configure(replicas=3)
    assert limiter.limit(*bot) == Limit(3, 10)  # 3 x 3 connections: never fewer than one
    limiter.configure(replicas=1)
    assert limiter.limit(*bot) == Limit(8, 30)


def test_a_reload_changes_the_limit_and_keeps_the_count_in_flight() -> None:
    limiter = Limiter()
    keys = [(HOST, Limit())]
    limiter.start(keys)
    limiter.start(keys)
    limiter.configure({"h": Override(connections=1)})
    assert limiter.wait(keys, 0.0) == math.inf
    limiter.finish(keys)
    limiter.finish(keys)
    assert limiter.wait(keys, 0.0) == 0


@pytest.mark.parametrize(("connections", "per_second"), [(0, None), (None, 0.0), (None, -1.0)])
def test_a_limit_refuses_values_that_would_stop_every_send(
    connections: int | None, per_second: float | None
) -> None:
    with pytest.raises(ValueError, match="must be"):
        Limit(connections, per_second)


# Any order of starts, ends and time passing: a send never starts unless the limiter
# said it may, and then no key ever has more in flight than its connections, nor more
# starts in any stretch of time than the bucket holds plus what the rate refills.
events = st.lists(
    st.one_of(
        st.tuples(st.just("start"), st.integers(0, 2)),
        st.tuples(st.just("finish"), st.integers(0, 2)),
        st.tuples(st.just("time"), st.floats(0.0, 2.0)),
    ),
    max_size=200,
)
limits = st.tuples(st.integers(1, 5), st.one_of(st.none(), st.floats(0.5, 20.0)))


@given(events, st.lists(limits, min_size=3, max_size=3), st.integers(1, 3))
def test_the_limits_are_never_exceeded(
    steps: list[tuple[str, float]], settings: list[tuple[int, float | None]], replicas: int
) -> None:
    limiter = Limiter(replicas=replicas)
    keys = [LimitKey("host", f"h{i}:", f"h{i}") for i in range(3)]
    builtin = [Limit(c, r) for c, r in settings]
    in_force = [limiter.limit(key, limit) for key, limit in zip(keys, builtin, strict=True)]
    # Target i is under key i and key 0 (as chats are under their bot).
    targets = [[(keys[0], builtin[0])] + ([(keys[i], builtin[i])] if i else []) for i in range(3)]
    now = 0.0
    flying: list[int] = []
    starts: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for kind, value in steps:
        if kind == "time":
            now += float(value)
        elif kind == "start":
            target = int(value)
            if limiter.wait(targets[target], now) == 0:
                limiter.start(targets[target])
                flying.append(target)
                for key, _ in targets[target]:
                    starts[keys.index(key)].append(now)
        elif flying:
            target = flying.pop(int(value) % len(flying))
            limiter.finish(targets[target])
        for i, key in enumerate(keys):
            using = sum(1 for t in flying if any(k == key for k, _ in targets[t]))
            assert limiter.in_flight(key) == using
            assert in_force[i].connections is not None
            assert using <= in_force[i].connections
    for i, limit in enumerate(in_force):
        if limit.per_second is None:
            continue
        times = starts[i]
        capacity = max(1.0, limit.per_second)
        for a in range(len(times)):
            for b in range(a, len(times)):
                window = times[b] - times[a]
                assert b - a + 1 <= capacity + window * limit.per_second + 1e-6
