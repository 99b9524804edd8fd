"""Promotion scrapers: page in, promotions out.

A library for the daemon to wire in. It imports nothing from ``watcher``, opens no
database and reads no clock.
"""
