"""Secrets in channel URLs stay out of every output: free-form headers, keys, tokens.

Apprise's ``url(privacy=True)`` hides the fields each service declares, but a URL can
carry its own: ``json://host/path?+Authorization=Bearer%20...`` sends an HTTP header,
``-name=`` a query field and ``:name=`` a payload field. Whatever the user puts there
may be a credential. The properties below put random secrets in those places.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.conftest import WriteConfig
from tests.servers import WebhookReceiver
from watcher.cli import main
from watcher.masking import mask_url, scrub, scrub_credentials, url_secrets

SCHEMES = ["json", "jsons", "xml", "xmls", "form", "forms"]
HOSTS = ["127.0.0.1:8080", "hooks.example.com", "user@hooks.example.com:8443"]
# Printable, with the characters that need escaping in a query.
SECRET_CHARS = st.characters(
    min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="\\"
) | st.sampled_from(" äж")
secret_values = st.text(SECRET_CHARS, min_size=6, max_size=40).filter(lambda s: s.strip() == s)
header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9\-]{0,20}", fullmatch=True)
credential_names = st.sampled_from(
    [
        "apikey",
        "api_key",
        "X-Api-Key",
        "token",
        "access_token",
        "secret",
        "password",
        "passwd",
        "auth",
        "Authorization",
        "signature",
        "session_id",
        "private_key",
    ]
)
token_values = st.from_regex(r"[A-Za-z0-9_\-]{20,48}", fullmatch=True).filter(
    lambda s: (
        sum((any(c.isdigit() for c in s), any(c.islower() for c in s), any(c.isupper() for c in s)))
        >= 2
    )
)
path_words = st.lists(st.from_regex(r"[a-z]{1,12}", fullmatch=True), max_size=3)

PLACEHOLDER = "PLACEHOLDER"


def build(scheme: str, host: str, path: list[str], params: list[tuple[str, str]]) -> str:
    query = "&".join(f"{quote(name, safe='+-:')}={quote(value, safe='')}" for name, value in params)
    return f"{scheme}://{host}/{'/'.join(path)}" + (f"?{query}" if query else "")


def leaks(secret: str, text: str) -> bool:
    return any(form in text for form in {secret, quote(secret, safe=""), quote(secret)})


@st.composite
def urls_with_a_secret(draw: st.DrawFn) -> tuple[str, str, str]:
    """(url, the secret in it, the same url with a harmless placeholder instead)."""
    scheme, host = draw(st.sampled_from(SCHEMES)), draw(st.sampled_from(HOSTS))
    path = draw(path_words)
    kind = draw(st.sampled_from(["header", "field", "payload", "named", "shaped"]))
    if kind == "named":
        name, secret = draw(credential_names), draw(secret_values)
    elif kind == "shaped":
        name, secret = "-" + draw(header_names), draw(token_values)
    else:
        prefix = {"header": "+", "field": "-", "payload": ":"}[kind]
        name, secret = prefix + draw(header_names), draw(secret_values)
        if kind == "header" and draw(st.booleans()):
            secret = "Bearer " + secret
    others = draw(st.lists(st.tuples(st.sampled_from(["+", "-", ":"]), header_names), max_size=3))
    before = draw(st.integers(0, len(others)))
    params = [(p + n, draw(secret_values)) for p, n in others]

    def url(value: str) -> str:
        return build(scheme, host, path, [*params[:before], (name, value), *params[before:]])

    return url(secret), secret, url(PLACEHOLDER)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(urls_with_a_secret())
def test_a_secret_anywhere_in_the_query_never_shows_in_the_masked_url(
    case: tuple[str, str, str],
) -> None:
    url, secret, harmless = case
    # The secret must not be spelt by what is shown anyway ("POST", the host...).
    assume(not leaks(secret, mask_url(harmless)))
    assume(not any(leaks(word, mask_url(harmless)) for word in secret.split()[-1:]))
    masked = mask_url(url)
    assert not leaks(secret, masked), masked
    assert not leaks(secret.split()[-1], masked), masked  # "Bearer <token>": the token


@settings(max_examples=200, deadline=None)
@given(urls_with_a_secret())
def test_text_that_echoes_a_url_secret_is_scrubbed(case: tuple[str, str, str]) -> None:
    url, secret, _ = case
    assume(len(secret.split()[-1]) >= 4)
    text = f"POST failed: server said {secret!s} was refused"
    cleaned = scrub(text, url_secrets(url))
    assert secret not in cleaned
    assert secret.split()[-1] not in cleaned


def test_free_form_parameters_stay_readable_with_their_values_hidden() -> None:
    masked = mask_url(
        "json://127.0.0.1:8080/hook?+Authorization=Bearer%20abc.def.ghi"
        "&+X-Api-Key=k3y-k3y-k3y&-source=watcher&:channel=ops"
    )
    assert "+Authorization=***" in masked
    assert "+X-Api-Key=***" in masked
    assert "-source=***" in masked and ":channel=***" in masked
    assert "abc.def.ghi" not in masked and "k3y-k3y-k3y" not in masked
    assert masked.startswith("json://127.0.0.1:8080/***?")


def test_credentials_named_in_any_logged_url_are_hidden() -> None:
    line = (
        "HTTP Request: GET http://127.0.0.1:8000/promo?page=2&apikey=abc123def&access_token=x9"
        ' "HTTP/1.1 200 OK" Authorization: Bearer eyJhbGciOi.J9x; Basic authentication'
    )
    assert scrub_credentials(line) == (
        "HTTP Request: GET http://127.0.0.1:8000/promo?page=2&apikey=***&access_token=***"
        ' "HTTP/1.1 200 OK" Authorization: Bearer ***; Basic authentication'
    )


HEADER_SECRET = "Zq7-header-secret-9f3"
KEY_SECRET = "k3y-4bcd-9876-XYZ"


def _config_with_headers(write_config: WriteConfig, db_url: str, url: str) -> Path:
    return write_config(
        f"""
        timezone: UTC
        database: {db_url}
        channels:
          hook: "{url}?+Authorization=Bearer%20{HEADER_SECRET}&+X-Api-Key={KEY_SECRET}"
        users:
          - name: alice
            notify: [hook]
            sims:
              - id: alice-kcell
                operator: kcell
                number: "+77011234567"
        """
    )


def test_check_and_notify_test_hide_header_values(
    write_config: WriteConfig, db_url: str, webhook: WebhookReceiver, capsys, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    path = _config_with_headers(write_config, db_url, webhook.url("hook"))
    assert main(["check", "-c", str(path)]) == 0
    assert main(["notify-test", "-c", str(path)]) == 0
    assert len(webhook.received) == 1  # the headers still go out: only the display hides them
    out, err = capsys.readouterr()
    for text in (out, err, caplog.text):
        assert HEADER_SECRET not in text
        assert KEY_SECRET not in text
    assert "+X-Api-Key=***" in out


def test_a_failing_channel_s_error_hides_its_header_values(
    write_config: WriteConfig, db_url: str, capsys, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    path = _config_with_headers(write_config, db_url, "json://127.0.0.1:1/nothing-listens")
    assert main(["notify-test", "-c", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "FAILED  hook" in out
    for text in (out, err, caplog.text):
        assert HEADER_SECRET not in text
        assert KEY_SECRET not in text
