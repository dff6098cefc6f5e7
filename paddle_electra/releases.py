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
        """The Python package / folder name hub installs it under ("-" is not allowed in a package name)."""
        return self.name.replace("-", "_")

    @property
    def class_name(self) -> str:
        """CamelCase class name of the generated module.py."""
        return "".join(part.capitalize() for part in self.name.split("-"))

    def summary(self) -> str:
        from .config import preset
        c = preset(self.size)
        return (f"{self.name}, {c.num_hidden_layers}-layer, {c.hidden_size}-hidden, {c.num_attention_heads}-heads, "
                f"{self.params} parameters. Pretrained on {self.corpus}.")


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


def get_release(name: str) -> Release:
    """The release called `name` (PaddleHub name, with - or _); ConfigError listing the known names otherwise."""
    release = _BY_NAME.get(str(name).replace("_", "-"))
    if release is None:
        raise ConfigError(f"unknown release {name!r}; known: {', '.join(sorted(_BY_NAME))}")
    return release


def release_names():
    return [r.name for r in RELEASES]
