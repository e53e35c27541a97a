"""Configuration: /etc/journal-sendmail.conf read once into a frozen record.

Nothing else in the program reads configuration files.
"""

from __future__ import annotations

import posix

from .dataclass_lite import fields, record, replace
from .errors import ConfigError
from .record import MAX_SIZE_CEILING, PART_SIZE_MAX, PART_SIZE_MIN

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


DEFAULT_PATH = "/etc/journal-sendmail.conf"
ENV_PATH = "JOURNAL_SENDMAIL_CONFIG"
SECTION = "journal-sendmail"

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp",
    "cron", "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)


@record(frozen=True)
class Config:
    """Every setting of the program, with its production default."""

    identifier: str = "sendmail"
    priority: int = 6
    facility: int = 2
    socket: str = "/run/systemd/journal/socket"
    timeout: float = 5.0
    part_size: int = 1 * MiB
    max_size: int = 128 * MiB
    store_text: bool = True
    spool: str = "/var/spool/journal-sendmail"
    spool_max_size: int = 0  # 0: max_size plus room for the metadata
    path: str = ""  # the file this was read from ("" for built-in defaults)

    @property
    def spool_limit(self) -> int:
        """The largest spool file the flusher will read."""
        return self.spool_max_size or self.max_size + MiB


def _size(text: str) -> int:
    """Parse ``1048576``, ``64K``, ``1M``, ``1MiB``, ``2G``.

    >>> _size("1M"), _size("64KiB"), _size("512")
    (1048576, 65536, 512)
    """
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": KiB, "M": MiB, "G": GiB}.get(t[-1:], 1)
    if scale != 1:
        t = t[:-1]
    if not t.isdigit():
        raise ValueError("want a size such as 1048576, 512K, 1M or 1G")
    return int(t) * scale


def _level(names: tuple[str, ...]) -> Callable[[str], int]:
    def parse(text: str) -> int:
        t = text.strip().lower()
        if t.isdigit() and int(t) < len(names):
            return int(t)
        if t in names:
            return names.index(t)
        raise ValueError(f"want 0-{len(names) - 1} or one of {', '.join(names)}")

    return parse


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 3600:
        raise ValueError("want seconds, more than 0 and at most 3600")
    return value


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("yes", "true", "on", "1"):
        return True
    if t in ("no", "false", "off", "0"):
        return False
    raise ValueError("want yes or no")


def _identifier(text: str) -> str:
    t = text.strip()
    if not t or any(c.isspace() for c in t):
        raise ValueError("want one word")
    return t


def _path(text: str) -> str:
    t = text.strip()
    if not t.startswith("/"):
        raise ValueError("want an absolute path")
    return t


PARSERS: dict[str, Callable[[str], object]] = {
    "identifier": _identifier,
    "priority": _level(PRIORITIES),
    "facility": _level(FACILITIES),
    "socket": _path,
    "timeout": _seconds,
    "part_size": _size,
    "max_size": _size,
    "store_text": _bool,
    "spool": _path,
    "spool_max_size": _size,
}


def _only_comments(text: str) -> bool:
    """True when the file sets nothing (the shipped file, all keys commented).

    This spares every cron mail the ~7 ms that importing configparser costs.
    """
    for line in text.splitlines():
        s = line.strip()
        if s and s[0] not in "#;" and s != f"[{SECTION}]":
            return False
    return True


def parse(text: str, path: str = "<string>") -> Config:
    """Parse the text of a configuration file into a Config."""
    if _only_comments(text):
        return Config(path=path)
    import configparser

    cp = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
    try:
        cp.read_string(text, source=path)
    except configparser.Error as e:
        raise ConfigError(f"{path}: {str(e).splitlines()[0]}") from None
    for section in cp.sections():
        if section != SECTION:
            raise ConfigError(f"{path}: unknown section [{section}] (want [{SECTION}])")
    values: dict[str, object] = {}
    if cp.has_section(SECTION):
        for key, raw in cp.items(SECTION):
            parser = PARSERS.get(key)
            if parser is None:
                raise ConfigError(f"{path}: unknown key {key!r}")
            try:
                values[key] = parser(raw)
            except ValueError as e:
                raise ConfigError(f"{path}: bad value for {key}: {raw!r} ({e})") from None
    cfg = replace(Config(path=path), **values)  # type: ignore[arg-type]
    if not PART_SIZE_MIN <= cfg.part_size <= PART_SIZE_MAX:
        raise ConfigError(f"{path}: bad value for part_size: {cfg.part_size} (want 4K to 64M)")
    if cfg.max_size > MAX_SIZE_CEILING:
        raise ConfigError(f"{path}: bad value for max_size: {cfg.max_size} (want at most 1G)")
    if cfg.max_size < cfg.part_size:
        raise ConfigError(f"{path}: bad value for max_size: {cfg.max_size} (want at least part_size)")
    return cfg


def load(
    path: str | None = None, environ: dict[str, str] | None = None, default_path: str = DEFAULT_PATH
) -> Config:
    """Read the configuration: ``path``, else $JOURNAL_SENDMAIL_CONFIG, else /etc.

    A missing /etc file means built-in defaults; a missing file that was asked
    for by name is an error.
    """
    if environ is None:
        raw = posix.environ.get(ENV_PATH.encode())
        named = path or (raw.decode("utf-8", "surrogateescape") if raw else None)
    else:
        named = path or environ.get(ENV_PATH)
    target = named or default_path
    try:
        with open(target, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        if named:
            raise ConfigError(f"{target}: no such configuration file") from None
        return Config()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{target}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    return parse(text, target)


KEYS = tuple(name for name in fields(Config) if name != "path")
