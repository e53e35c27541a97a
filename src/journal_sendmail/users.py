"""Users: the one place that looks up login names and uids (``pwd``)."""

import posix

_names: dict[int, str | None] = {}


def name_of(uid: int | None) -> str | None:
    """The login name of ``uid`` on this host (cached), or None when it has none."""
    if uid is None:
        return None
    if uid not in _names:
        import pwd

        try:
            _names[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            _names[uid] = None
    return _names[uid]


def login_name(uid: int | None = None) -> str:
    """The login name of ``uid`` (default: the real uid), or the number when it has none."""
    uid = posix.getuid() if uid is None else uid
    return name_of(uid) or str(uid)


def exists(uid: int) -> bool:
    """Is ``uid`` a user of this system?"""
    return name_of(uid) is not None


def uid_of(name: str) -> int | None:
    """The uid of login ``name`` (a number is taken as it is), or None."""
    if name.isdigit():
        return int(name)
    import pwd

    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None
