"""Events: what the forwarder did, as journal entries (MESSAGE_ID cda5a936…, in the catalog), never as mail."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ...errors import JournalError
from ...journal import Journal
from ...record import encode
from ...schema import FORWARD_EVENT, MAIL_ID, MSG_FORWARD
from ..render import printable

SOCKET = "/run/systemd/journal/socket"
PRIORITY = {"delivered": 6, "digest-sent": 6, "retried": 4, "gap": 4, "gave-up": 3, "held": 5, "reload-failed": 3}

Log = Callable[..., None]


class Events:
    """Writes one entry per event; says it on stderr too when the journal cannot take it."""

    def __init__(self, socket: str = SOCKET, echo: bool = False) -> None:
        self.socket = socket
        self.echo = echo
        self.count: dict[str, int] = {}

    def __call__(self, event: str, message: str, **fields: str) -> None:
        self.count[event] = self.count.get(event, 0) + 1
        message = printable(message, one_line=True)  # a forged subject's CR, LF or ESC fakes nothing
        entry = [
            ("MESSAGE", message.encode("utf-8", "replace")),
            ("MESSAGE_ID", MSG_FORWARD.encode()),
            ("PRIORITY", str(PRIORITY.get(event, 6)).encode()),
            ("SYSLOG_FACILITY", b"2"),
            ("SYSLOG_IDENTIFIER", b"journal-mail-forward"),
            (FORWARD_EVENT, event.encode()),
        ]
        entry += [(f"FORWARD_{k.upper()}" if k != "mail_id" else MAIL_ID,
                   printable(v, one_line=True).encode("utf-8", "replace")) for k, v in fields.items() if v]
        sent = True
        sink = Journal(self.socket, 5)
        try:
            sink.send(encode(entry))
        except JournalError:
            sent = False
        finally:
            sink.close()
        if self.echo or not sent:
            sys.stderr.write(f"journal-mail forward: {message}\n")
            sys.stderr.flush()
