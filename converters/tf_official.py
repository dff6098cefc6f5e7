"""The official TensorFlow ELECTRA checkpoint (google-research/electra, ymcui/Chinese-ELECTRA) -> two model directories.

A pretraining checkpoint holds both models (electra-reference.md §4.2): the discriminator under `electra/` and
`discriminator_predictions/`, the generator under `generator/` and `generator_predictions/`, and the embeddings they
share under `electra/embeddings/`. We write `OUT/discriminator/` and `OUT/generator/`; both get the shared tables.

Names: `tf_variable_name` spells each HF name (from `converters.mapping.name_table`, the one per-layer table) the
official way, so the TF side is the inverse of that rename, not a table of its own. TF kernels are [in, out], the
Paddle layout; HF's are [out, in], so kernels are transposed into HF layout here and back by `hf_to_paddle`.
Skipped: Adam slots (`*/adam_m`, `*/adam_v`), `global_step`, and any name with `temperature`. Fine-tuned checkpoints'
`task_specific/*` are refused unless `skip_task_specific` (then the backbone alone is written, as the official
fine-tuning code's restore does). Anything else unknown, missing or mis-shaped is a WeightsError naming the variable.
"""
from __future__ import annotations

import os
from typing import Dict, Optional

import numpy as np

from paddle_electra.config import PRESET_SIZES, ElectraConfig, preset
from paddle_electra.errors import ConfigError, WeightsError
from paddle_electra.weights import VOCAB_NAME

from . import tf_checkpoint
from .hf import check_output_dir, check_vocab, hf_layout, note, output_dir, summarize, write_model_dir
from .mapping import hf_to_paddle

ROLES = ("discriminator", "generator")
CONFIG_FILES = {"discriminator": "discriminator.json", "generator": "generator.json"}


def is_skipped(name: str) -> bool:
    """Variables that are not model weights: optimizer slots, the step counter, the sampling temperature."""
    return name.endswith(("/adam_m", "/adam_v")) or name == "global_step" or "temperature" in name


def tf_variable_name(hf_name: str, role: str, embeddings_scope: str = "electra") -> str:
    """The official TF variable holding HF tensor `hf_name` of the discriminator or the generator."""
    if hf_name == "generator_lm_head.bias":
        return "generator_predictions/output_bias"
    parts = hf_name.split(".")
    if parts[0] == "electra":
        # the generator's transformer lives under `generator/`, but its embeddings are the shared `electra/embeddings`
        own_scope = "electra" if role == "discriminator" else "generator"
        parts[0] = embeddings_scope if parts[1] == "embeddings" else own_scope
    out = []
    for i, part in enumerate(parts):
        if part == "layer" and i + 1 < len(parts) and parts[i + 1].isdigit():
            continue
        if part.isdigit() and i > 0 and parts[i - 1] == "layer":
            out.append(f"layer_{part}")
        elif part == "dense_prediction":
            out.append("dense_1")  # the second tf.layers.dense in the scope
        elif i == len(parts) - 1:
            parent = parts[i - 1]
            if parent.endswith("_embeddings"):
                continue  # an embedding table is a variable of its own, not a layer with a weight
            if parent == "LayerNorm":
                out.append("gamma" if part == "weight" else "beta")
            else:
                out.append("kernel" if part == "weight" else part)
        else:
            out.append(part)
    return "/".join(out)


def plan_roles(variables) -> Dict[str, Optional[str]]:
    """Which models and heads the checkpoint holds: {"discriminator": head, "generator": head or None}."""
    names = list(variables)
    has = lambda prefix: any(n.startswith(prefix) for n in names)  # noqa: E731
    if not has("electra/encoder/"):
        raise WeightsError("no electra/encoder/* variables: not an ELECTRA checkpoint in the official naming")
    roles = {"discriminator": "discriminator" if has("discriminator_predictions/") else "none"}
    roles["generator"] = "generator" if (has("generator/") or has("generator_predictions/")) else None
    return roles


def variable_table(config: ElectraConfig, role: str, head: str, embeddings_scope: str):
    """TF name -> (HF name, TF-layout shape, transpose) for one model, from the HF layout the config implies."""
    table = {}
    for hf_name, (shape, transposed) in hf_layout(config, head).items():
        tf_shape = shape[::-1] if transposed else shape
        table[tf_variable_name(hf_name, role, embeddings_scope)] = (hf_name, tuple(tf_shape), transposed)
    return table


def resolve_configs(prefix, size=None, discriminator_config=None, generator_config=None, roles=ROLES):
    """Configs from the given json, else discriminator.json / generator.json beside the checkpoint, else --size."""
    folder = os.path.dirname(prefix)
    given = {"discriminator": discriminator_config, "generator": generator_config}
    configs, sources = {}, {}
    for role in roles:
        path = given[role] or os.path.join(folder, CONFIG_FILES[role])
        if given[role] or os.path.isfile(path):
            configs[role], sources[role] = ElectraConfig.from_json(path), os.fspath(path)
        elif size is not None:
            configs[role], sources[role] = preset(size, role), f"the {size} {role} preset (--size {size})"
        else:
            raise ConfigError(f"{path}: not found, and no --size given: pass --{role}-config JSON or "
                              f"--size one of {', '.join(PRESET_SIZES)}")
    return configs, sources


def matching_presets(variables) -> list:
    """Preset sizes whose discriminator fits the checkpoint's shapes (for the message when --size is wrong)."""
    found = []
    for size in PRESET_SIZES:
        cfg = preset(size, "discriminator")
        table = variable_table(cfg, "discriminator", "none", "electra")
        if all(n in variables and tuple(variables[n][1]) == s for n, (_, s, _) in table.items()):
            found.append(size)
    return found


def convert_checkpoint(checkpoint, out, size=None, discriminator_config=None, generator_config=None, vocab=None,
                       skip_task_specific=False, force=False) -> Dict[str, str]:
    """Convert an official TF checkpoint into OUT/discriminator (and OUT/generator); returns {role: head} written."""
    if size is not None and size not in PRESET_SIZES:
        raise ConfigError(f"--size {size!r}: choose one of {', '.join(PRESET_SIZES)}")
    prefix = tf_checkpoint.resolve_checkpoint_prefix(checkpoint)
    index = prefix + ".index"
    variables = tf_checkpoint.list_variables(prefix)
    task_specific = sorted(n for n in variables if n.startswith("task_specific/"))
    if task_specific and not skip_task_specific:
        raise WeightsError(f"{index}: a fine-tuned checkpoint (task_specific/* variables such as "
                           f"{task_specific[0]!r}): its task head does not map onto the pretraining models; pass "
                           "--skip-task-specific to convert the backbone alone")
    try:
        roles = plan_roles(variables)
    except WeightsError as err:
        raise WeightsError(f"{index}: {err}") from None
    configs, sources = resolve_configs(prefix, size, discriminator_config, generator_config,
                                       [role for role, head in roles.items() if head is not None])
    vocab = os.fspath(vocab) if vocab else os.path.join(os.path.dirname(prefix), VOCAB_NAME)
    check_vocab(vocab, configs["discriminator"].vocab_size)
    check_output_dir(out, force)
    embeddings_scope = "generator" if any(n.startswith("generator/embeddings/") for n in variables) else "electra"
    tables = {role: variable_table(configs[role], role, head, embeddings_scope if role == "generator" else "electra")
              for role, head in roles.items() if head is not None}

    def preset_hint():
        if "preset" not in sources["discriminator"]:
            return ""
        fits = matching_presets(variables)
        return f" (the checkpoint fits --size {' or '.join(fits)})" if fits else ""

    known = set().union(*tables.values())
    unknown = [n for n in variables if n not in known and not is_skipped(n) and not n.startswith("task_specific/")]
    if unknown:
        raise WeightsError(f"{index}: unknown variable(s) for the configs in use ({sources['discriminator']}, "
                           f"{sources.get('generator', '-')}): {summarize(repr(n) for n in unknown)}{preset_hint()}")
    problems = []
    for role, table in tables.items():
        for name, (_, shape, _) in table.items():
            if name not in variables:
                problems.append(f"{role} variable {name!r} is missing")
            elif tuple(variables[name][1]) != shape:
                problems.append(f"{name!r} has shape {list(variables[name][1])}, "
                                f"{sources[role]} implies {list(shape)}")
    if problems:
        raise WeightsError(f"{index}: {summarize(problems)}{preset_hint()}")

    arrays = tf_checkpoint.read_checkpoint(prefix, names=sorted(known))
    written = {}
    with output_dir(out, force) as tmp:
        for role, table in tables.items():
            hf = {}
            for name, (hf_name, _, transposed) in table.items():
                value = np.asarray(arrays[name], dtype=np.float32)
                hf[hf_name] = value.T if transposed else value  # HF (torch) layout; hf_to_paddle transposes back
            ours = hf_to_paddle(hf, configs[role], roles[role], source=index)
            write_model_dir(os.path.join(tmp, role), configs[role], ours, roles[role], vocab)
            written[role] = roles[role]
    if roles["discriminator"] == "none":
        note(f"{index} has no discriminator_predictions/*: {out}/discriminator holds the backbone only")
    if roles["generator"] is None:
        note(f"{index} has no generator (generator/*, generator_predictions/*): only {out}/discriminator written")
    return written
