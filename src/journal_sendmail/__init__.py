"""journal-sendmail: a sendmail that stores every message in the systemd journal."""

__version__ = "0.4.0"
