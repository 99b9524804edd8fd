"""The exceptions the scrapers library raises.

    ScraperError            -- root; the daemon records it as the source's error state
    ├── FetchError          -- the page could not be fetched
    │   ├── FetchTimeout    -- connect or read timed out
    │   ├── FetchStatus     -- an HTTP error status (after retries)
    │   ├── FetchTooLarge   -- the body exceeded the size cap
    │   ├── FetchRedirect   -- too many redirects, a loop, a redirect off http(s)
    │   │                      or from a public address to a private one
    │   └── FetchForbidden  -- robots.txt disallows the URL
    ├── ExtractError        -- the page was fetched but could not be read as configured
    └── ProfileError        -- a source profile is malformed (found while loading
                               profiles, so never a source's error state)

Lower-level errors (httpx, json, selectolax, yaml) are translated at the boundary, so
the daemon never sees a library's exception type.
"""

from __future__ import annotations


class ScraperError(Exception):
    """Root of every error the scrapers library raises on purpose."""

    def __init__(self, message: str, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class FetchError(ScraperError):
    """The page could not be fetched."""


class FetchTimeout(FetchError):
    """Connecting or reading took longer than the timeout."""


class FetchStatus(FetchError):
    """The server answered with an error status."""

    def __init__(self, message: str, url: str | None = None, status: int = 0) -> None:
        super().__init__(message, url)
        self.status = status


class FetchTooLarge(FetchError):
    """The body is larger than the configured cap."""


class FetchRedirect(FetchError):
    """Too many redirects, a loop, a redirect off http(s), or into a private network."""


class FetchForbidden(FetchError):
    """robots.txt disallows fetching this URL for our user agent."""


class ExtractError(ScraperError):
    """The page could not be read as the source describes (bad selector, bad JSON path...)."""


class ProfileError(ScraperError):
    """A source profile is malformed; the message names the file, entry and field."""
