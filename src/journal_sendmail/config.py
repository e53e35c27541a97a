"""Configuration: /etc/journal-sendmail.conf read once into a frozen record.

Nothing else in the program reads configuration files.  A bad file never
costs a mail: what cannot be used is replaced by the built-in default and
listed in ``Config.problems``, for the caller to report; ``check`` is the
strict reading (``journal-sendmail --check-config``).
"""

import posix

from .dataclass_lite import fields, record, replace
from .errors import ConfigError
from .schema import MAX_SIZE_CEILING, PART_SIZE_MAX, PART_SIZE_MIN

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
    # (key, why) for each setting that could not be used ("" for the whole
    # file): the built-in default is in its place
    problems: tuple[tuple[str, str], ...] = ()

    @property
    def error(self) -> str:
        """The problems in one line ("" when there are none)."""
        return "; ".join(why for _, why in self.problems)

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


def _level(names: tuple[str, ...]) -> "Callable[[str], int]":
    def parse(text: str) -> int:
        t = text.strip().lower()
        if t.isdigit() and int(t) < len(names):
            return int(t)
        if t in names:
            return names.index(t)
        raise ValueError(f"want 0-{len(names) - 1} or one of {', '.join(names)}")

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:  # also NaN
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


PARSERS: "dict[str, Callable[[str], object]]" = {
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


def parse(text: str, path: str = "<string>") -> "Config":
    """Parse the text of a configuration file into a Config; what cannot be
    used keeps its built-in default and is listed in ``problems``."""
    if _only_comments(text):
        return Config(path=path)
    import configparser

    cp = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
    try:
        cp.read_string(text, source=path)
    except configparser.Error as e:
        return Config(path=path, problems=(("", f"{path}: {str(e).splitlines()[0]}; built-in defaults used"),))
    problems: list[tuple[str, str]] = []
    for section in cp.sections():
        if section != SECTION:
            problems.append(("", f"{path}: unknown section [{section}] (want [{SECTION}]), ignored"))
    defaults = Config()
    values: dict[str, object] = {}
    if cp.has_section(SECTION):
        for key, raw in cp.items(SECTION):
            parser = PARSERS.get(key)
            if parser is None:
                problems.append((key, f"{path}: unknown key {key!r}, ignored"))
                continue
            try:
                values[key] = parser(raw)
            except ValueError as e:
                problems.append((key, f"{path}: bad value for {key}: {raw!r} ({e}); "
                                      f"built-in default {getattr(defaults, key)!r} used"))
    part_size = values.get("part_size", defaults.part_size)
    assert isinstance(part_size, int)
    if not PART_SIZE_MIN <= part_size <= PART_SIZE_MAX:
        del values["part_size"]
        part_size = defaults.part_size
        problems.append(("part_size", f"{path}: bad value for part_size: {cp.get(SECTION, 'part_size')!r} "
                                      f"(want 4K to 64M); built-in default {part_size} used"))
    max_size = values.get("max_size", defaults.max_size)
    assert isinstance(max_size, int)
    if max_size > MAX_SIZE_CEILING:
        del values["max_size"]
        max_size = defaults.max_size
        problems.append(("max_size", f"{path}: bad value for max_size: {cp.get(SECTION, 'max_size')!r} "
                                     f"(want at most 1G); built-in default {max_size} used"))
    if max_size < part_size:
        key = "max_size" if "max_size" in values else "part_size"
        values.pop(key)
        problems.append((key, f"{path}: bad value for {key}: {cp.get(SECTION, key)!r} (want max_size at "
                              f"least part_size); built-in default {getattr(defaults, key)} used"))
    return replace(Config(path=path, problems=tuple(problems)), **values)  # type: ignore[arg-type]


def _choose(path: str | None, environ: dict[str, str] | None) -> tuple[str | None, str | None]:
    """(the file asked for by name or None, $JOURNAL_SENDMAIL_CONFIG)."""
    if environ is None:
        raw = posix.environ.get(ENV_PATH.encode())
        return path, (raw.decode("utf-8", "surrogateescape") if raw else None)
    return path, environ.get(ENV_PATH)


def _read(target: str) -> str:
    """The file's text; FileNotFoundError passes, other failures are ConfigError."""
    try:
        with open(target, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{target}: cannot read: {getattr(e, 'strerror', None) or e}") from None


def load(
    path: str | None = None, environ: dict[str, str] | None = None, default_path: str = DEFAULT_PATH
) -> "Config":
    """Read the configuration: ``path``, else $JOURNAL_SENDMAIL_CONFIG, else /etc.

    Never fails: a missing /etc file means built-in defaults; a file that
    cannot be read, or a missing one asked for by name, means built-in
    defaults with the reason in ``problems``.
    """
    given, env = _choose(path, environ)
    named = given or env
    target = named or default_path
    try:
        text = _read(target)
    except FileNotFoundError:
        if named:
            return Config(problems=(("", f"{target}: no such configuration file; built-in defaults used"),))
        return Config()
    except ConfigError as e:
        return Config(problems=(("", f"{e.reason}; built-in defaults used"),))
    return parse(text, target)


def check(path: str | None = None, environ: dict[str, str] | None = None, default_path: str = DEFAULT_PATH) -> str:
    """The strict reading, for ``--check-config``: the file checked, or
    ConfigError naming every problem (a missing /etc file is fine)."""
    given, env = _choose(path, environ)
    target = given or env or default_path
    try:
        text = _read(target)
    except FileNotFoundError:
        if given or env:
            raise ConfigError(f"{target}: no such configuration file") from None
        return f"{target} (absent: built-in defaults)"
    cfg = parse(text, target)
    if cfg.problems:
        raise ConfigError(cfg.error)
    return target


KEYS = tuple(name for name in fields(Config) if name not in ("path", "problems"))
