"""Caller: who handed us the mail, read from the parent process in /proc."""

from __future__ import annotations

import posix


def caller_fields(ppid: int | None = None, proc: str = "/proc") -> dict[str, str]:
    """MAIL_CALLER_PID, _COMM and _EXE of the parent (what can be read)."""
    pid = posix.getppid() if ppid is None else ppid
    out = {"MAIL_CALLER_PID": str(pid)}
    try:
        with open(f"{proc}/{pid}/comm", "rb") as f:
            out["MAIL_CALLER_COMM"] = f.read().rstrip(b"\n").decode("utf-8", "replace")
    except OSError:
        pass
    try:
        out["MAIL_CALLER_EXE"] = posix.readlink(f"{proc}/{pid}/exe")
    except OSError:
        pass  # another user's process: /proc hides its exe
    return out
