"""Keep secrets and phone numbers out of logs, errors and messages."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from urllib.parse import SplitResult, unquote, unquote_plus, urlsplit

# Schemes whose path or query is usually a secret token (webhooks, ntfy topics...).
_TOKEN_PATH_SCHEMES = {"json", "jsons", "xml", "xmls", "form", "forms", "ntfy", "ntfys"}

# Apprise's prefixes for free-form query parameters: ``+`` an HTTP header, ``-`` a form
# or query field, ``:`` a payload field. Whatever they carry (``+Authorization=Bearer
# ...``) is the user's own and may be a credential, so their values are never shown.
_FREE_FORM_PREFIXES = ("+", "-", ":")

# A parameter whose name says it carries a credential (apikey, X-Api-Key, access_token,
# passwd, Authorization, sig...).
_SECRET_NAME = re.compile(
    r"key|token|secret|pass|pwd|auth|sig|session|cookie|credential|bearer|private|jwt",
    re.IGNORECASE,
)

# The characters a token is made of (see ``looks_like_token``).
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-.~+/=:]+")
# A plain word ("closed", "Markdown", "text") is never a secret on its own.
_PLAIN_WORD = re.compile(r"[A-Za-z][a-z]{0,19}|[A-Z]{1,20}")

# ``name=value`` in any URL query that reaches a log line, named as a credential.
_SECRET_QUERY_PARAM = re.compile(
    r"(?P<name>[?&;][^=&\s#?;\"']*(?:"
    + _SECRET_NAME.pattern
    + r")[^=&\s#?;\"']*=)(?P<value>[^&\s#;\"']+)",
    re.IGNORECASE,
)
_AUTH_SCHEME = re.compile(
    r"\b(?P<scheme>Bearer|Basic)(?P<sep>\s+|%20|\+)(?P<value>[^\s&\"',;]{6,})"
)


def looks_like_token(value: str) -> bool:
    """Whether ``value`` has the shape of a credential rather than of a word or setting.

    Tokens, keys and signatures are long strings of URL-safe characters mixing letters
    and digits (or cases); long digit runs may be phone numbers or account ids.
    """
    value = value.strip()
    if len(value) < 10 or not _TOKEN_CHARS.fullmatch(value) or _PLAIN_WORD.fullmatch(value):
        return False
    if value.isdigit():
        return True
    kinds = sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
        )
    )
    return kinds >= 2 or len(value) >= 32


def secret_param(name: str, value: str) -> bool:
    """Whether the query parameter ``name=value`` (both decoded) must not be shown."""
    if not value:
        return False
    if name.startswith(_FREE_FORM_PREFIXES) or _SECRET_NAME.search(name):
        return True
    return looks_like_token(value)


def _mask_query(query: str) -> str:
    """``query`` with every secret parameter's value replaced by ``***``."""
    shown = []
    for pair in query.split("&"):
        raw_name, equals, raw_value = pair.partition("=")
        name, value = unquote(raw_name), unquote_plus(raw_value)
        readable = name if name.isprintable() and not set(name) & set("&=#? ") else raw_name
        if equals and secret_param(name, value):
            shown.append(f"{readable}=***")
        else:
            shown.append(f"{readable}{equals}{raw_value}")
    return "&".join(shown)


def mask_phone(number: str) -> str:
    """``+77011234567`` -> ``+7 701 *** ** 67``: enough to recognise, not to dial."""
    from watcher.phones import mask_number

    return mask_number(number)


def mask_url(url: str) -> str:
    """An Apprise URL with its secrets hidden, for any output a person may read.

    Apprise's own ``url(privacy=True)`` knows each service's secret fields; where
    Apprise cannot parse the URL we fall back to showing the scheme only.
    """
    import apprise

    if url.startswith("console://"):
        return "console://"
    instance = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if not instance:
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        return f"{scheme}://***"
    masked: str = instance.url(privacy=True)  # type: ignore[no-untyped-call]
    parts = urlsplit(masked)
    path = parts.path
    if parts.scheme in _TOKEN_PATH_SCHEMES and path.strip("/"):
        path = "/***"
    # Apprise hides the fields it knows; the free-form ones (``+header``, ``-field``,
    # ``:field``) and any other key or token in the query are hidden here.
    masked = parts._replace(path=path, query=_mask_query(parts.query)).geturl()
    # Belt and braces: a credential Apprise echoed somewhere unexpected is still removed.
    try:
        return scrub(masked, _credentials(urlsplit(url)))
    except ValueError:
        return f"{parts.scheme}://***"


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def url_secrets(url: str) -> list[str]:
    """The parts of a raw URL that must never be shown, for scrubbing text that may echo them.

    They are the whole URL, its credentials (see ``_credentials``) and the path segments
    and query values that are not plain words: webhook ids, ntfy topics, chat ids. Ordinary
    words in a path (``/hooks/closed``) are not among them, nor is the user name: scrubbing
    them would turn every later "closed" or "user" in the logs into ``***``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [url, *_credentials(parts)]
    for segment in parts.path.split("/"):
        found.extend(c for c in {segment, unquote(segment)} if _secret_segment(c))
    for pair in parts.query.split("&"):
        _, _, raw_value = pair.partition("=")
        found.extend(c for c in {raw_value, unquote_plus(raw_value)} if _secret_segment(c))
    return found


def _credentials(parts: SplitResult) -> list[str]:
    """What in a URL is a credential whatever the service: its password, the values of
    free-form (``+header``) and credential-named parameters, and token-shaped strings in
    its host (Telegram's ``123456789:AAbb...``), path or query."""
    found: list[str] = []
    if parts.password:
        found.extend({parts.password, unquote(parts.password)})
    for segment in parts.path.split("/"):
        found.extend(c for c in {segment, unquote(segment)} if looks_like_token(c))
    for pair in parts.query.split("&"):
        raw_name, _, raw_value = pair.partition("=")
        name, value = unquote(raw_name), unquote_plus(raw_value)
        if secret_param(name, value):
            found.extend({raw_value, value, unquote(raw_value)})
            # "Bearer abc123": the credential may also be echoed without its scheme.
            found.extend(word for word in value.split() if looks_like_token(word))
    host = parts.netloc.rsplit("@", 1)[-1]
    if looks_like_token(host):  # and its parts: "123456789:AAbb..." is a bot id and token
        found.extend([host, *(part for part in host.split(":") if looks_like_token(part))])
    return found


def _secret_segment(text: str) -> bool:
    """A path segment or value worth scrubbing from logs: long enough, and not a word."""
    if len(text) < 6 or _PLAIN_WORD.fullmatch(text):
        return False
    return looks_like_token(text) or not text.isalpha()


def scrub_credentials(text: str) -> str:
    """``text`` with credentials that announce themselves hidden, registered or not.

    Query parameters named as credentials (``?apikey=...``, ``&access_token=...``) and
    ``Bearer``/``Basic`` values, wherever a library happens to log them.
    """
    text = _SECRET_QUERY_PARAM.sub(r"\g<name>***", text)
    return _AUTH_SCHEME.sub(_hide_auth_value, text)


def _hide_auth_value(match: re.Match[str]) -> str:
    if _PLAIN_WORD.fullmatch(match["value"]):  # "Basic authentication failed"
        return match[0]
    return f"{match['scheme']}{match['sep']}***"


class _ScrubSecrets(logging.Filter):
    """Removes channel secrets from every log record, whichever library logged it."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        _rewrite(record, lambda message: scrub_credentials(scrub(message, self.secrets)))
        return True


def _rewrite(record: logging.LogRecord, clean: Callable[[str], str]) -> None:
    """Replace the record's message by ``clean(message)`` when that differs."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: the handler reports it, as without us
        return
    cleaned = clean(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None


_scrubber = _ScrubSecrets()


def current_secrets() -> list[str]:
    """The secrets the log filter removes now (for formatters that add fields of their own)."""
    return list(_scrubber.secrets)


def hide_in_logs(urls: list[str]) -> None:
    """Keep these URLs' secrets out of every log line, even at DEBUG (Apprise, urllib3...).

    The filter sits on the root logger's handlers, which see every propagated record.
    """
    _scrubber.secrets = sorted(
        {secret for url in urls for secret in url_secrets(url)}, key=len, reverse=True
    )
    guard_logs()


class _DropQueries(logging.Filter):
    """Cuts the query off every URL in a record: for libraries that log whole request URLs."""

    _url_query = re.compile(r"(?P<url>\b[a-z][a-z0-9+.-]*://[^\s?#\"']+)\?[^\s#\"']*")

    def filter(self, record: logging.LogRecord) -> bool:
        _rewrite(record, lambda message: self._url_query.sub(r"\g<url>?…", message))
        return True


_drop_queries = _DropQueries()

# Libraries that log each request's full URL, query (``?apikey=...``) included, at INFO.
# Our fetcher logs its own line per request, host and path only.
_HTTP_LOGGERS = ("httpx", "httpcore")


def guard_logs() -> None:
    """Put the secret filters in place: on the root logger's handlers, which see every
    propagated record, and on the HTTP libraries' loggers, whose request lines carry
    the query of each URL. Call it again after adding a handler to the root logger."""
    for handler in logging.getLogger().handlers:
        if _scrubber not in handler.filters:
            handler.addFilter(_scrubber)
    for name in _HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _drop_queries not in logger.filters:
            logger.addFilter(_drop_queries)
