"""Links as promotions carry them: absolute, http(s) only, and canonical for identity.

:func:`safe_link` makes a link or image address absolute and lets through only http(s)
URLs: ``javascript:``, ``data:``, ``mailto:`` and the like are dropped, never passed on.
:func:`canonical_link` is the form a link takes as a promotion's key, so a promotion
keeps its identity whatever tracking parameters, host spelling or trailing slash the
page gives its link this time.

Both are on the hot path (every item of every page), so the usual shapes of URL are
recognised by a regex and only the rest pays for urllib's parsing.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import urljoin, urlsplit, urlunsplit

__all__ = ["canonical_link", "safe_link"]

URL_LIMIT = 2048

# Query parameters that say who sent the visitor, not what the page is (plus utm_*).
_TRACKING = frozenset(
    {
        *("fbclid", "gclid", "dclid", "gbraid", "wbraid", "yclid", "msclkid", "igshid"),
        *("_openstat", "mc_cid", "mc_eid"),
    }
)
_URL_NOISE = re.compile(r"[\t\n\r]")  # browsers delete these anywhere in a URL
# http(s), a lowercase host name without user info or port, then anything: such a URL
# needs neither validation nor host normalisation. Groups: scheme, host, path, query,
# fragment.
_PLAIN_URL = re.compile(
    r"(https?)://([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(/[^?#]*)?(?:\?([^#]*))?(?:#(.*))?", re.S
)
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
_DEFAULT_PORTS = {"http": 80, "https": 443}


def safe_link(href: str | None, base_url: str) -> str | None:
    """``href`` made absolute against ``base_url`` if the result is an http(s) URL.

    Everything else is None: ``javascript:`` (however spelled: ``JaVaScRiPt:``,
    ``java\\tscript:``, with leading control characters), ``data:``, ``mailto:``,
    ``tel:``, ``file:``, URLs without a host, malformed and over-long ones.
    """
    if not href:
        return None
    # What a browser does before parsing: strip C0 controls and spaces, drop tabs/newlines.
    cleaned = _URL_NOISE.sub("", href).strip(_C0_AND_SPACE)
    if not cleaned or len(cleaned) > URL_LIMIT:
        return None
    if cleaned[0] == "/" and cleaned[1:2] != "/" and "/." not in cleaned:
        origin = _origin(base_url)  # the common "/ru/promo/a": no parsing needed
        return origin + cleaned if origin else None
    if _PLAIN_URL.fullmatch(cleaned):
        return cleaned  # the common "https://host/path": valid as it is
    try:
        if cleaned[:8].lower().startswith(("http://", "https://")):
            absolute = cleaned
        else:
            absolute = urljoin(base_url, cleaned)
        parts = urlsplit(absolute)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return absolute


@functools.lru_cache(maxsize=64)
def _origin(base_url: str) -> str | None:
    """``https://host[:port]`` of an http(s) base URL, or None."""
    try:
        parts = urlsplit(base_url)
        _ = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc}"


def canonical_link(url: str) -> str:
    """The identity of a link: scheme and host lowercased; default port, user info and
    fragment (unless it is a ``#/route``) dropped; tracking parameters (``utm_*``,
    ``fbclid``, ``gclid``...) removed; an empty path made ``/`` and a trailing slash
    removed from any other path.

    The order of the remaining query parameters is kept: sites render their own links
    consistently, and some servers give order a meaning.
    """
    plain = _PLAIN_URL.fullmatch(url)
    if plain is not None:  # the usual case, without urllib's overhead
        scheme, netloc, path, query, fragment = plain.groups(default="")
    else:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return url
        scheme, path, query, fragment = (
            parts.scheme.lower(),
            parts.path,
            parts.query,
            parts.fragment,
        )
        host = (parts.hostname or "").rstrip(".")
        netloc = f"[{host}]" if ":" in host else host
        if port is not None and port != _DEFAULT_PORTS.get(scheme):
            netloc += f":{port}"
    path = path or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    if query:
        query = "&".join(
            pair for pair in query.split("&") if pair and not _is_tracking(pair.split("=")[0])
        )
    # A fragment is dropped unless it is a client-side route ("#/promo/12", "#!/promo/12"):
    # there it is the only thing telling one promotion from the next.
    if not fragment.startswith(("/", "!/")):
        fragment = ""
    return urlunsplit((scheme, netloc, path, query, fragment))


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("utm_") or lowered in _TRACKING
