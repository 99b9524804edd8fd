"""The promotion pipeline: from a fetched page to a subscriber's message.

``jobs``
    Which sources are due, fetching and extracting them (the ``scrapers`` library),
    and storing each result with its alerts in one transaction.
``store``
    What change detection remembers per source, and the promotions' history.
``alerts``
    Who hears of which change (matching), and when (immediately or in digests).
"""
