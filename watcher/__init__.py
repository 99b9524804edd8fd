"""SIM Watcher: renewal, balance-check and idle-number reminders for prepaid SIM cards."""

__version__ = "0.1.0"
