"""The project's own error types: every failure a user can cause names the file, line or field at fault; and the
one wrapper that turns them into a command's exit status."""
import functools
import sys

EXIT_ERROR = 2  # every command: bad input, a refused file, a failed check


class ElectraError(Exception):
    """Base class of every error paddle_electra raises on bad input."""


class ConfigError(ElectraError, ValueError):
    """A config file or flag has a missing, unknown or inconsistent field."""


class WeightsError(ElectraError):
    """A weights file is missing, corrupt, refused (pickle) or does not fit the model."""


class DataError(ElectraError, ValueError):
    """A data file cannot be read: wrong encoding, columns, labels or JSON structure."""

    def __init__(self, message, path=None, line=None, field=None):
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")
        self.path, self.line, self.field = path, line, field


class PeerLostError(ElectraError):
    """Another rank of a distributed run (a process or a whole node) stopped, or stopped answering."""


def command(main):
    """Decorator for every command's main(): a project error (or an OSError: disk full, permissions) ends it with one
    line `error: ...` on stderr, naming the file, and exit status 2; None means 0. Other exceptions are bugs and keep
    their traceback."""
    @functools.wraps(main)
    def run(*args, **kwargs) -> int:
        try:
            code = main(*args, **kwargs)
        except ElectraError as err:
            print(f"error: {' '.join(str(err).splitlines())}", file=sys.stderr)
            return EXIT_ERROR
        except OSError as err:
            where = f"{err.filename}: " if getattr(err, "filename", None) else ""
            print(f"error: {where}{err.strerror or err}", file=sys.stderr)
            return EXIT_ERROR
        return 0 if code is None else code
    return run
