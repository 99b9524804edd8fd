import pytest

from watcher.masking import mask_phone, mask_url, scrub, url_secrets


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+77011234567", "+7 701 *** ** 67"),
        ("+7 701 123 45 67", "+7 701 *** ** 67"),
        ("+4915112345678", "+491 *** ** 78"),
        ("12", "***"),
    ],
)
def test_phone_numbers_are_masked(number: str, masked: str) -> None:
    assert mask_phone(number) == masked


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("mailtos://user:hunter2pw@smtp.example.com?to=me@example.com", "hunter2pw"),
        ("tgram://123456789:AAbbccddeeffgghhiijjkkllmmnnooppqqr/123456789", "AAbbccddeeff"),
        ("json://127.0.0.1:8080/secret-webhook-token", "secret-webhook-token"),
        ("ntfys://ntfy.sh/my-private-topic-42", "my-private-topic-42"),
    ],
)
def test_urls_are_shown_without_their_secrets(url: str, secret: str) -> None:
    masked = mask_url(url)
    assert secret not in masked
    assert masked.split("://")[0] == url.split("://")[0]


def test_unparseable_url_shows_only_its_scheme() -> None:
    assert mask_url("nosuchservice://token@host") == "nosuchservice://***"


def test_scrub_removes_every_part_of_a_url_from_an_error() -> None:
    url = "json://127.0.0.1:8080/secret-webhook-token?key=abcdef123"
    text = f"failed posting to {url}: token secret-webhook-token rejected, key abcdef123"
    cleaned = scrub(text, url_secrets(url))
    assert "secret-webhook-token" not in cleaned
    assert "abcdef123" not in cleaned


def test_log_scrubbing_hides_secrets_but_leaves_ordinary_words() -> None:
    import logging

    from watcher.masking import hide_in_logs

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    root = logging.getLogger()
    handler = Keep()
    root.addHandler(handler)
    try:
        hide_in_logs(["mailtos://user:hunter2secret@smtp.example.com?to=me@example.com"])
        logging.getLogger("apprise").warning("login as user with %s failed", "hunter2secret")
    finally:
        root.removeHandler(handler)
        hide_in_logs([])
    assert records == ["login as user with *** failed"]
