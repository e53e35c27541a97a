"""journal-sendmail: a sendmail that stores every message in the systemd journal."""

__version__ = "0.4.1"

# The sender's modules on a plain cron mail's path, each after those it
# imports at its top (tests/test_startup.py checks that the list is whole).
CRON_PATH = ("dataclass_lite", "errors", "schema", "config", "options", "cli", "headers", "message",
             "submission", "deliver", "users", "journal", "record", "body")


def preload(names: "tuple[str, ...]" = CRON_PATH) -> int:
    """Load the package's modules ``names`` from their byte-code caches
    directly, before anything imports them; return how many were loaded.

    Every cron mail pays sendmail's start-up, and importlib's path finder
    and source loader (frozen Python code) cost about 70 us a module before
    the module's own code runs: 1.0 ms, a quarter of what a cron mail adds
    to the interpreter's start-up (measured: 1.42x -> 1.33x of
    ``python3 -I -S -c pass``).  This does their job for the one case that
    matters, the __pycache__ file that py3compile wrote for this Python:
    the same file importlib would read, taken only when importlib would take
    it (this interpreter's magic number, a timestamp-checked cache whose
    source's mtime and size match), the module set up with the attributes
    importlib gives it.  Anything else (no cache, a stale or hash-based one,
    -O) stops here, and the normal import takes over from that module on.
    """
    import marshal
    import posix
    import sys

    external = sys.modules.get("_frozen_importlib_external")
    bootstrap = sys.modules.get("_frozen_importlib")
    magic = getattr(external, "MAGIC_NUMBER", None)
    tag = sys.implementation.cache_tag
    if external is None or bootstrap is None or magic is None or tag is None or sys.flags.optimize:
        return 0
    package = sys.modules[__name__]
    here = __path__[0]
    loaded = 0
    for name in names:
        full = f"{__name__}.{name}"
        if full in sys.modules:
            continue
        source = f"{here}/{name}.py"
        cached = f"{here}/__pycache__/{name}.{tag}.pyc"
        try:
            st = posix.stat(source)
            fd = posix.open(cached, posix.O_RDONLY | posix.O_CLOEXEC)
            try:
                data = posix.read(fd, max(posix.fstat(fd).st_size, 16))
            finally:
                posix.close(fd)
        except OSError:
            return loaded
        # PEP 552's header: magic, flags (0: checked by timestamp), source mtime, source size
        if (data[:4] != magic or data[4:8] != b"\0\0\0\0"
                or int.from_bytes(data[8:12], "little") != int(st.st_mtime) & 0xFFFFFFFF
                or int.from_bytes(data[12:16], "little") != st.st_size & 0xFFFFFFFF):
            return loaded
        code = marshal.loads(memoryview(data)[16:])
        loader = external.SourceFileLoader(full, source)
        spec = bootstrap.ModuleSpec(full, loader, origin=source)
        spec.cached = cached
        spec.has_location = True
        module = type(sys)(full)
        module.__file__ = source
        module.__cached__ = cached  # type: ignore[attr-defined]
        module.__package__ = __name__
        module.__loader__ = loader
        module.__spec__ = spec
        sys.modules[full] = module
        try:
            exec(code, module.__dict__)
        except BaseException:
            del sys.modules[full]
            raise
        setattr(package, name, sys.modules[full])
        loaded += 1
    return loaded
