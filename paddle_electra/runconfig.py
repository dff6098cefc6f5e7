"""The typed layer under every run config and command line: defaults (a dataclass) -> a JSON file -> flags.

The configs are small dataclasses: PretrainConfig (pretrain/config.py), FinetuneConfig (finetune/config.py),
BuildOptions (pretrain/data.py, the dataset builder) and ServeOptions (paddle_electra/hub/serve.py). What they
share lives here, once:
- `apply`: a copy of a config with values set, each checked against its field's type (`coerce`) and its name
  against the fields (`suggest`, the "did you mean" hint); `load`: defaults -> JSON file -> flags in one call;
- `coerce`: a value as the type of a field's annotation (bool, int, float, str, dict, Optional[...]); JSON values
  are checked, a flag's text is read ("true"/"false", "2e-4", '{"hidden_size": 64}', "none");
- `read_flags` / `split_flags`: a free-form `--key value` command line (pretrain/run.py, finetune/run.py's config
  flags) as typed field values;
- `ArgumentParser` + `add_fields` / `field_flags`: the commands with their own positional and path arguments
  (dataset builder, converters, serving, installers) parse with argparse, one-line errors and exit status 2, and
  take a config dataclass's fields as `--field-name VALUE` flags that go through `apply` like any other value.
JSON files are read by paddle_electra.fileio.read_json_file. Every problem is one ConfigError line that names its
source (file or flag) and the field; commands turn it into one `error:` line and exit status 2 (errors.command).
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import typing

from .errors import ConfigError
from .fileio import read_json_file

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


def apply(config, values: dict, source: str, aliases=None, read_strings: bool = False):
    """A copy of the dataclass instance `config` with `values` ({key: value}) set. Keys may use dashes for
    underscores; `aliases` maps other accepted names (the official ones) to fields. Each value is checked as its
    field's type; `read_strings`: a string value for a non-string field is read as text ("2e-4"), as a flag's
    would be (False: JSON's own types are required). ConfigError names `source` and the field."""
    types, changes = field_types(type(config)), {}
    for key, value in values.items():
        name = key.replace("-", "_")
        name = (aliases or {}).get(name, name)
        if name not in types:
            raise ConfigError(f"{source}: unknown field {key!r}{suggest(name, types)}")
        changes[name] = coerce(types[name], value, f"{source}: field {name!r}",
                               text=read_strings and isinstance(value, str))
    return dataclasses.replace(config, **changes)


def load(cls, json_path=None, flags=None, what: str = "config file"):
    """defaults -> the JSON object in `json_path` -> `flags` (typed values or a flag's text), as a `cls`."""
    config = cls()
    if json_path:
        config = apply(config, read_json_file(json_path, what), json_path)
    return apply(config, flags or {}, "command line", read_strings=True)


def read_flags(tokens, types: dict, bare=None, aliases=None, config_key="config") -> tuple:
    """(config_path or None, {field: typed value}) of a command line of `--key value`, `--key=value` and bare
    `--key` tokens: dashes mean underscores, `--config FILE` names a JSON file (`config_key` None: no such flag), a
    bare boolean flag is true and a bare `--key` in `bare` takes bare[key] (`--resume` -> "latest"). Unknown keys:
    ConfigError with a hint."""
    config_path, values = None, {}
    for key, text in split_flags(tokens):
        name = key.replace("-", "_")
        name = (aliases or {}).get(name, name)
        flag = f"--{key}"
        if config_key is not None and name == config_key:
            if text is None:
                raise ConfigError(f"{flag} needs a JSON file path")
            config_path = text
        elif name not in types:
            raise ConfigError(f"unknown flag {flag}{suggest(name, types)}")
        elif text is not None:
            values[name] = coerce(types[name], text, f"flag {flag}", text=True)
        elif _unwrap(types[name])[0] is bool:
            values[name] = True
        elif name in (bare or {}):
            values[name] = bare[name]
        else:
            raise ConfigError(f"flag {flag} needs a value")
    return config_path, values


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the project's error rule: a bad command line is a ConfigError, which the command's
    errors.command wrapper prints as one line `error: <prog>: <message> (see --help)` with exit status 2 (argparse's
    default prints the whole usage block first). Sub-command parsers are of this class too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _SubParsers)

    def error(self, message):
        raise ConfigError(f"{self.prog}: {message} (see --help)")


class _SubParsers(argparse._SubParsersAction):
    def __init__(self, *args, **kwargs):
        kwargs["parser_class"] = ArgumentParser
        super().__init__(*args, **kwargs)


_FIELD_DEST = "field:"  # argparse dest prefix of add_fields' flags
_METAVARS = {bool: "BOOL", int: "INT", float: "FLOAT", str: "TEXT", dict: "JSON"}


def add_fields(parser, cls, helps=None, title=None, skip=()):
    """Each field of the dataclass `cls` (but `skip`) as an optional `--field-name VALUE` of `parser`. The text is
    kept as given and read by `apply` (through `field_flags` + `load`), so flags and JSON follow one set of type
    rules; an absent flag leaves the field to the JSON file or the default (shown in --help)."""
    defaults = cls()
    group = parser.add_argument_group(title or f"{cls.__name__} fields")
    for name, kind in field_types(cls).items():
        if name in skip:
            continue
        base, optional = _unwrap(kind)
        default = getattr(defaults, name)
        help_text = (helps or {}).get(name, "")
        help_text = f"{help_text + '; ' if help_text else ''}{_TYPE_WORDS[base]}, default {default!r}"
        group.add_argument(f"--{name.replace('_', '-')}", dest=_FIELD_DEST + name, default=argparse.SUPPRESS,
                           metavar=_METAVARS[base], help=help_text)
    return group


def field_flags(args) -> dict:
    """{field: text} of the add_fields flags present in a parsed argparse namespace."""
    return {k[len(_FIELD_DEST):]: v for k, v in vars(args).items() if k.startswith(_FIELD_DEST)}
