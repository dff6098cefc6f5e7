"""Building the PaddleHub module a task trains, and the two things the loop needs from it: the layer-wise LR
multiplier over its parameter names and a batch predictor for the evaluation pass.

`--model` is one of: a model directory (config.json + model.safetensors + vocab.txt; built as ElectraHubModule
without installing anything), a PaddleHub module folder (holding module.py: `hub.Module(directory=...)`), or the name
of an installed module (`hub.Module(name=...)`, e.g. chinese-electra-small). Call `paddle_electra.hub.home.
prepare_hub_home()` before this module imports paddlehub (run.py does).
"""
from __future__ import annotations

import json
import os
import re

import numpy as np

from paddle_electra import optim
from paddle_electra.errors import ConfigError
from paddle_electra.weights import CONFIG_NAME, WEIGHTS_NAME

from paddle_electra.batching import pad_rows

# the backbone's parameters inside any module: "model.electra.encoder.3.qkv.weight" -> "electra.encoder.3.qkv.weight"
_BACKBONE = re.compile(r"(?:^|\.)(electra\.(?:embeddings|embeddings_project|encoder)\..*)$")


def model_source(spec: str):
    """('model_dir' | 'module_dir' | 'name', value) for a --model argument."""
    if os.path.isdir(spec):
        if os.path.isfile(os.path.join(spec, "module.py")):
            return "module_dir", os.path.abspath(spec)
        if os.path.isfile(os.path.join(spec, CONFIG_NAME)) and os.path.isfile(os.path.join(spec, WEIGHTS_NAME)):
            return "model_dir", os.path.abspath(spec)
        raise ConfigError(f"{spec}: --model is a folder but holds neither module.py (a PaddleHub module) nor "
                          f"{CONFIG_NAME} + {WEIGHTS_NAME} (a model directory)")
    if os.sep in spec or spec.startswith("."):
        raise ConfigError(f"{spec}: --model folder not found")
    return "name", spec


def check_installed(name: str):
    """A module name must be installed in the hub home: otherwise hub would ask its server (an offline
    ServerConnectionError traceback here); say in one line how to get it instead."""
    from paddle_electra.hub.home import default_hub_home
    home = default_hub_home()
    if not os.path.isdir(os.path.join(home, "modules", name.replace("-", "_"))):
        raise ConfigError(f"--model {name}: no such module installed in {home} (HUB_HOME). Get it with `python -m "
                          f"converters download|from-release ... --out DIR`, `python -m converters package --model-dir "
                          f"<its discriminator model directory> --name {name} --out dist` and `python -m "
                          f"modules.install dist/<archive>`, or pass a model directory as --model")


def module_kwargs(task, config) -> dict:
    """hub.Module keyword arguments of a run: the task's (task, num_classes, label_map) and the config's head options."""
    kwargs = task.hub_kwargs()
    if config.pooling != "cls":
        kwargs["pooling"] = config.pooling
    if config.backbone_dropout is not None:
        kwargs["backbone_dropout"] = config.backbone_dropout
    return kwargs


def check_checkpoint_head(checkpoint: str, hub_kwargs: dict):
    """A best_model/ checkpoint records its head options in task.json beside it; a [CLS] head and a mean-pooling head
    have the same parameters, so loading one as the other would run without error and predict wrongly."""
    info_path = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "task.json")
    if not os.path.isfile(info_path):
        return
    with open(info_path, encoding="utf-8") as f:
        trained = json.load(f).get("hub_kwargs", {}).get("pooling", "cls")
    wanted = hub_kwargs.get("pooling", "cls")
    if trained != wanted:
        raise ConfigError(f"{checkpoint}: trained with pooling {trained!r} ({info_path}), loaded with pooling "
                          f"{wanted!r}; pass --pooling {trained}")


def build_module(spec: str, hub_kwargs: dict, load_checkpoint=None):
    """The hub module for `spec` with the task's head (fresh) on the pretrained backbone."""
    source, value = model_source(spec)
    kwargs = dict(hub_kwargs)
    if load_checkpoint:
        check_checkpoint_head(load_checkpoint, kwargs)
        kwargs["load_checkpoint"] = load_checkpoint
    if source == "name":
        check_installed(value)
    if source == "model_dir":
        from paddle_electra.hub.module import ElectraHubModule
        module = ElectraHubModule(model_dir=value, **kwargs)
    else:
        import paddlehub as hub
        module = hub.Module(directory=value, **kwargs) if source == "module_dir" else hub.Module(name=value, **kwargs)
    for needed in ("training_step", "validation_step", "get_tokenizer"):
        if not hasattr(module, needed):
            raise ConfigError(f"{spec}: the module has no {needed}(); it is not a fine-tunable PaddleHub module")
    return module


def backbone(module):
    """The ElectraModel inside a module (its config sets the size and depth)."""
    from paddle_electra.modeling import ElectraModel
    found = [layer for layer in module.sublayers(include_self=True) if isinstance(layer, ElectraModel)]
    if len(found) != 1:
        raise ConfigError(f"expected one ElectraModel inside the module, found {len(found)}")
    return found[0]


def layerwise_multiplier(module, num_layers: int, decay: float):
    """LR multiplier by parameter name (optim.layerwise_multiplier on the name from `electra.` on); checks that the
    embeddings and every encoder layer were found, as the official code raises on a variable it cannot place."""
    depths = set()
    for name, _ in module.named_parameters():
        match = _BACKBONE.search(name)
        if match:
            depths.add(optim.layer_depth(match.group(1), num_layers))
    if depths != set(range(num_layers + 1)):
        missing = sorted(set(range(num_layers + 1)) - depths)
        raise ConfigError(f"layer-wise LR decay: no parameters found for depth(s) {missing} (0 = embeddings, k + 1 = "
                          f"encoder layer k) in the module's parameter names")

    def multiplier(name):
        match = _BACKBONE.search(name)
        return optim.layerwise_multiplier(match.group(1) if match else "head", num_layers, decay)

    return multiplier


def reinitialize_backbone(module, seed: int):
    """Replace the pretrained backbone weights by a fresh random init (the no-pretraining baseline)."""
    import paddle
    from paddle_electra.modeling import ElectraModel
    target = backbone(module)
    paddle.seed(seed)
    with paddle.utils.unique_name.guard():
        fresh = ElectraModel(target.config)
    target.set_state_dict(fresh.state_dict())


def predictor(module, pad_id: int):
    """predict(rows) -> numpy outputs of the module's forward (logits, or (start, end) logits) for feature rows."""
    import paddle

    def predict(rows):
        input_ids = paddle.to_tensor(pad_rows([r[0] for r in rows], pad_id))
        token_type_ids = paddle.to_tensor(pad_rows([r[1] for r in rows], 0))
        with paddle.no_grad():
            out = module(input_ids, token_type_ids)
        if isinstance(out, (tuple, list)):
            return tuple(np.asarray(o.numpy()) for o in out)
        return np.asarray(out.numpy())

    return predict
