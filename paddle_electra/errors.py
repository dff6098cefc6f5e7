"""The project's own error types: every failure a user can cause names the file, line or field at fault."""


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
