"""The released Chinese ELECTRA models (HFL, ymcui/Chinese-ELECTRA): names, shapes, HF repos and PaddleHub names.

One registry for the converters (which repo to download), the PaddleHub module generator (one `modules/<name>/` per
entry) and the packager. Shapes come from the presets (`paddle_electra/configs/*.json`); the parameter counts are the
discriminator's, as the official README quotes them. Order follows the official README's download table.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError

HUB_VERSION = "2.0.2"  # the PaddleHub interface version these modules follow (chinese-electra-small 2.0.2)


@dataclass(frozen=True)
class Release:
    """One released model: its PaddleHub name, preset size, HF repos and the text shown by `hub show`."""

    name: str  # PaddleHub module name, e.g. "chinese-electra-small"
    size: str  # preset size: small, small-ex, base, large
    hf_discriminator: str
    hf_generator: str
    corpus: str  # what it was pretrained on, for the summary
    params: str  # discriminator parameter count as the official README gives it

    @property
    def package_name(self) -> str:
        return package_name(self.name)

    @property
    def class_name(self) -> str:
        return class_name(self.name)

    def summary(self) -> str:
        from .config import preset
        return module_summary(self.name, preset(self.size), self.params, f"Pretrained on {self.corpus}.")


def package_name(name: str) -> str:
    """The Python package / folder name hub installs module `name` under ("-" is not allowed in a package name)."""
    return name.replace("-", "_")


def class_name(name: str) -> str:
    """CamelCase class name of module `name`'s generated module.py."""
    return "".join(part.capitalize() for part in name.split("-"))


def module_summary(name: str, config, params: str, description: str) -> str:
    """The one-line summary of a module (hub's `summary` field, the archive README): shape, size, then what it is."""
    return (f"{name}, {config.num_hidden_layers}-layer, {config.hidden_size}-hidden, {config.num_attention_heads}-heads, "
            f"{params} parameters. {description}")


def _release(name, size, corpus, params):
    repo = "hfl/" + name
    return Release(name, size, repo + "-discriminator", repo + "-generator", corpus, params)


_PARAMS = {"small": "12M", "small-ex": "25M", "base": "102M", "large": "324M"}
_WIKI = "Chinese Wikipedia and general text, 5.4B tokens"
_180G = "Chinese Wikipedia, general text and CommonCrawl, 180G"
_LEGAL = "general text and judicial documents"

RELEASES = tuple(
    [_release(f"chinese-electra-180g-{s}", s, _180G, _PARAMS[s]) for s in ("large", "base", "small-ex", "small")]
    + [_release(f"chinese-electra-{s}", s, _WIKI, _PARAMS[s]) for s in ("large", "base", "small-ex", "small")]
    + [_release(f"chinese-legal-electra-{s}", s, _LEGAL, _PARAMS[s]) for s in ("large", "base", "small")]
)
_BY_NAME = {r.name: r for r in RELEASES}


def is_release(name: str) -> bool:
    return str(name).replace("_", "-") in _BY_NAME


def get_release(name: str) -> Release:
    """The release called `name` (PaddleHub name, with - or _); ConfigError listing the known names otherwise."""
    release = _BY_NAME.get(str(name).replace("_", "-"))
    if release is None:
        raise ConfigError(f"unknown release {name!r}; known: {', '.join(sorted(_BY_NAME))}")
    return release


def release_names():
    return [r.name for r in RELEASES]
