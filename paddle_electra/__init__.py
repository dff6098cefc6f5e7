"""paddle-electra: Chinese ELECTRA (generator and discriminator) in PaddlePaddle dygraph.

Importing this package sets the CPU performance variables (see `paddle_electra.env`) when Paddle is not imported yet,
and imports Paddle itself only when a model class is first used, so the tokenizer and data tools stay light.
"""
from . import env as _env

if not _env.paddle_already_imported():
    _env.configure()
_env.tune_malloc()  # works at any time: it governs allocations from now on

from .config import ElectraConfig, preset, generator_config  # noqa: E402  (no paddle import)
from .errors import ElectraError, ConfigError, WeightsError, DataError  # noqa: E402

__version__ = "0.1.0"

_LAZY = {
    "ElectraModel": "modeling", "ElectraDiscriminator": "modeling", "ElectraGenerator": "modeling",
    "ElectraForSequenceClassification": "modeling", "ElectraForTokenClassification": "modeling",
    "ElectraForQuestionAnswering": "modeling", "ElectraForTextMatching": "modeling", "ElectraEncoder": "modeling",
    "ElectraForPretraining": "pretraining", "PretrainOutput": "pretraining",
    "ElectraTokenizer": "tokenizer", "build_vocab": "tokenizer",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'paddle_electra' has no attribute {name!r}")


__all__ = ["ElectraConfig", "preset", "generator_config", "ElectraError", "ConfigError", "WeightsError",
           "DataError", *_LAZY]
