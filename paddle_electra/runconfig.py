"""The typed layer under every run config: defaults (a dataclass) -> a JSON file -> `--key value` flags.

PretrainConfig (pretrain/config.py) and FinetuneConfig (finetune/config.py) are small dataclasses; what they share
lives here, once:
- `coerce`: a value as the type of a field's annotation (bool, int, float, str, dict, Optional[...]); JSON values
  are checked, a flag's text is read ("true"/"false", "2e-4", '{"hidden_size": 64}', "none");
- `split_flags`: `--key value`, `--key=value` and bare `--key` tokens of a command line;
- `suggest`: the "did you mean" hint for a key no field has.
JSON files are read by paddle_electra.fileio.read_json_file. Every problem is one ConfigError line that names its
source (file or flag) and the field.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import typing

from .errors import ConfigError

TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")
_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a JSON object"}


def field_types(cls) -> dict:
    """{field name: annotation} of a config dataclass (string annotations resolved)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def suggest(key: str, known) -> str:
    """The hint after an unknown `key`: " (did you mean 'x'?)", or the known keys when none is close."""
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"


def _unwrap(kind):
    """(base type, optional) of an annotation: Optional[int] -> (int, True)."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) is typing.Union and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return kind, False


def coerce(kind, value, where: str, text: bool = False):
    """`value` as the field type `kind`; `text`: `value` is a flag's string, read as that type first. Integral
    floats are accepted for integers (the official configs write num_train_epochs as 2.0). ConfigError: "<where>
    must be an integer, got '1.5'"."""
    base, optional = _unwrap(kind)
    if optional and (value is None or (text and value.strip().lower() in ("none", "null"))):
        return None
    ok, checked = _check(base, _read_text(base, value) if text and base is not str else value)
    if not ok:
        raise ConfigError(f"{where} must be {_TYPE_WORDS[base]}{' or null' if optional else ''}, got {value!r}")
    return checked


def _read_text(base, text: str):
    """A flag's text as `base`, or the text itself when it does not read as one (the check then reports it)."""
    lowered = text.strip().lower()
    if base is bool:
        return True if lowered in TRUE_WORDS else False if lowered in FALSE_WORDS else text
    try:
        if base is int:
            return float(text) if any(c in text for c in ".eE") else int(text)
        if base is float:
            return float(text)
        if base is dict:
            return json.loads(text)
    except ValueError:  # json.JSONDecodeError is one
        return text
    raise AssertionError(f"unhandled config field type {base}")


def _check(base, value) -> tuple:
    if base is bool:
        return isinstance(value, bool), value
    if base is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return isinstance(value, int) and not isinstance(value, bool), value
    if base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if base in (str, dict):
        return isinstance(value, base), value
    raise AssertionError(f"unhandled config field type {base}")


def split_flags(tokens) -> list:
    """[(key, text)] of `--key value`, `--key=value` and bare `--key` (text None) tokens, in order; keys as given."""
    pairs, i, tokens = [], 0, list(tokens)
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or len(token) < 3:
            raise ConfigError(f"command line: expected --key value, got {token!r}")
        key, eq, text = token[2:].partition("=")
        if not eq:
            if i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                text = tokens[i + 1]
                i += 1
            else:
                text = None
        pairs.append((key, text))
        i += 1
    return pairs
