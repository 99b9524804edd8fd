"""Keep secrets and phone numbers out of logs, errors and messages."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

# Schemes whose path or query is usually a secret token (webhooks, ntfy topics...).
_TOKEN_PATH_SCHEMES = {"json", "jsons", "xml", "xmls", "form", "forms", "ntfy", "ntfys"}


def mask_phone(number: str) -> str:
    """``+77011234567`` -> ``+7 701 *** ** 67``: enough to recognise, not to dial."""
    digits = re.sub(r"\D", "", number)
    if len(digits) < 7:
        return "***"
    if number.strip().startswith("+") and digits.startswith("7") and len(digits) == 11:
        return f"+7 {digits[1:4]} *** ** {digits[-2:]}"
    prefix = "+" if number.strip().startswith("+") else ""
    return f"{prefix}{digits[:3]} *** ** {digits[-2:]}"


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
    if parts.scheme in _TOKEN_PATH_SCHEMES and parts.path.strip("/"):
        masked = masked.replace(parts.path, "/***", 1)
    return masked


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def url_secrets(url: str) -> list[str]:
    """The parts of a raw URL that must never be shown: password, tokens in path and query.

    The user name is not among them: Apprise shows it too, and scrubbing a short
    name like "user" would mangle every log line that contains the word.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [url]
    if parts.password:
        found.append(parts.password)
    found.extend(seg for seg in parts.path.split("/") if len(seg) >= 6)
    for pair in parts.query.split("&"):
        _, _, value = pair.partition("=")
        if len(value) >= 6:
            found.append(value)
    if parts.scheme in _TOKEN_PATH_SCHEMES or "://" in url:
        host = parts.netloc.rsplit("@", 1)[-1]
        if len(host) >= 20:  # telegram and similar put the token where a host would be
            found.append(host)
    return found


class _ScrubSecrets(logging.Filter):
    """Removes channel secrets from every log record, whichever library logged it."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            cleaned = scrub(message, self.secrets)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


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
    for handler in logging.getLogger().handlers:
        if _scrubber not in handler.filters:
            handler.addFilter(_scrubber)
