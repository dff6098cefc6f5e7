"""HF transformers ELECTRA directories <-> paddle_electra model directories, plus the plumbing every converter shares.

Every converter in this package goes through HF names: a source's names are rewritten to HF's (torch layout), and
`converters.mapping.hf_to_paddle` (the one per-layer name table) does the rest, strictly. The shared pieces here:
- `hf_layout(config, head)`: the HF name, torch-layout shape and "is a transposed Linear weight" flag of every tensor
  the config implies, derived from the model itself (built under `paddle.LazyGuard`, so no memory is allocated) and
  the name table; the other converters check their sources against it and name the source tensor on a mismatch;
- `output_dir(out, force)`: outputs are built in a temp folder beside `out` and renamed into place at the end, so an
  interrupted conversion never leaves a half-written model directory;
- `write_model_dir(...)`: config.json (with `architectures`), model.safetensors (checksummed), vocab.txt and a
  tokenizer_config.json carrying the source's do_lower_case.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from paddle_electra.config import ElectraConfig
from paddle_electra.errors import ConfigError, WeightsError
from paddle_electra import fileio
from paddle_electra.weights import (CONFIG_NAME, VOCAB_NAME, WEIGHTS_NAME, load_safetensors, read_json,
                                    save_safetensors)

from .mapping import HF_IGNORABLE, HF_TIED, hf_to_paddle, name_table, paddle_to_hf

# HF class per head; our models write the same names into config.json (ElectraDiscriminator.architecture, ...)
ARCHITECTURES = {"discriminator": "ElectraForPreTraining", "generator": "ElectraForMaskedLM", "none": "ElectraModel"}
HEAD_OF_ARCHITECTURE = {arch: head for head, arch in ARCHITECTURES.items()}
HEAD_PREFIXES = {"discriminator": "discriminator_predictions.", "generator": "generator_predictions."}
# config.json leftovers that would describe the source file rather than what we write (dtype, tool versions)
STALE_CONFIG_KEYS = ("torch_dtype", "dtype", "transformers_version", "paddlenlp_version", "_name_or_path", "use_cache")

SAFETENSORS_NAME, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
TORCH_NAME, TORCH_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
PICKLE_WARNING = ("pickle files from untrusted sources can run arbitrary code when loaded: use --allow-pickle only "
                  "on files whose source you trust")
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
MAX_LISTED = 4  # problems named one by one in an error message before "... and N more"


def warn(message: str):
    """A one-line warning on stderr (the CLI's channel for things the user must know but that are not errors)."""
    print(f"warning: {message}", file=sys.stderr)


def note(message: str):
    """A one-line remark on stderr about what was (not) written."""
    print(f"note: {message}", file=sys.stderr)


def summarize(problems, limit=MAX_LISTED) -> str:
    """Join problems on one line, naming the first `limit` and counting the rest."""
    problems = list(problems)
    text = "; ".join(problems[:limit])
    return text + (f"; ... and {len(problems) - limit} more" if len(problems) > limit else "")


# ---- the shapes a config implies ---------------------------------------------------------------------------------
def paddle_shapes(config: ElectraConfig, head: str) -> Dict[str, Tuple[int, ...]]:
    """Our parameter names and shapes for `config` + head, read off the model built lazily (no weights allocated)."""
    import paddle
    from paddle_electra import modeling
    cls = {"discriminator": modeling.ElectraDiscriminator, "generator": modeling.ElectraGenerator,
           "none": modeling.ElectraEncoder}[head]
    with paddle.LazyGuard():
        model = cls(config)
    return {name: tuple(int(d) for d in param.shape) for name, param in model.state_dict().items()}


def hf_layout(config: ElectraConfig, head: str) -> Dict[str, Tuple[Tuple[int, ...], bool]]:
    """HF name -> (torch-layout shape, is_linear_weight): Linear weights are [out, in] in HF, [in, out] in Paddle/TF."""
    ours = paddle_shapes(config, head)
    layout = {}
    for hf_names, name, kind in name_table(config, head):
        shape = ours[name]
        if kind == "copy":
            layout[hf_names[0]] = (shape, False)
        elif kind == "linear":
            layout[hf_names[0]] = (shape[::-1], True)
        elif kind == "qkv_weight":  # ours [in, 3 * out] -> each of q, k, v [out, in]
            for n in hf_names:
                layout[n] = ((shape[1] // len(hf_names), shape[0]), True)
        elif kind == "qkv_bias":
            for n in hf_names:
                layout[n] = ((shape[0] // len(hf_names),), False)
        else:
            raise ValueError(f"mapping.name_table row of unknown kind {kind!r}")
    return layout


def check_model_state(tensors: Dict[str, np.ndarray], config: ElectraConfig, head: str, source: str):
    """Our own state dict against the config: every tensor present, none extra, every shape right."""
    expected = paddle_shapes(config, head)
    problems = [f"missing tensor {n!r}" for n in expected if n not in tensors]
    problems += [f"unexpected tensor {n!r}" for n in tensors if n not in expected]
    problems += [f"tensor {n!r} has shape {list(tensors[n].shape)}, config implies {list(s)}"
                 for n, s in expected.items() if n in tensors and tuple(tensors[n].shape) != s]
    if problems:
        raise WeightsError(f"{source}: does not match its config.json: {summarize(problems)}")


def shapes_seen(tensors: Dict[str, np.ndarray], prefix="electra.") -> str:
    """What the weights say about the transformer's shape, in config field names (for "your config is wrong" hints)."""
    found = {}
    word = tensors.get(f"{prefix}embeddings.word_embeddings.weight")
    if word is not None and np.ndim(word) == 2:
        found["vocab_size"], found["embedding_size"] = word.shape
    query = tensors.get(f"{prefix}encoder.layer.0.attention.self.query.weight")
    if query is not None and np.ndim(query) == 2:
        found["hidden_size"] = query.shape[0]
    inter = tensors.get(f"{prefix}encoder.layer.0.intermediate.dense.weight")
    if inter is not None and np.ndim(inter) == 2:
        found["intermediate_size"] = inter.shape[0]
    layers = {n.split(".")[3] for n in tensors if n.startswith(f"{prefix}encoder.layer.")}
    if layers:
        found["num_hidden_layers"] = len(layers)
    return ", ".join(f"{k}={v}" for k, v in found.items())


# ---- model directories ---------------------------------------------------------------------------------------------
def check_output_dir(out, force: bool):
    """Refuse an --out that is a file, or a non-empty folder unless --force."""
    out = os.fspath(out)
    if os.path.lexists(out):
        if not os.path.isdir(out) or os.path.islink(out):
            raise ConfigError(f"{out}: --out exists and is not a folder")
        if os.listdir(out) and not force:
            raise ConfigError(f"{out}: --out exists and is not empty; pass --force to replace it")


def _share_like_umask(root):
    """mkdtemp/mkstemp create private (0700/0600) entries; give the finished output the user's usual permissions."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(root, 0o777 & ~umask)
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            os.chmod(os.path.join(folder, d), 0o777 & ~umask)
        for f in files:
            os.chmod(os.path.join(folder, f), 0o666 & ~umask)


@contextlib.contextmanager
def output_dir(out, force: bool = False):
    """Yield an empty staging folder beside `out`; when the block succeeds it becomes `out` in one rename
    (fileio.atomic_folder: an existing `out`, empty or replaced by --force, is swapped out whole)."""
    out = os.path.abspath(os.fspath(out))
    check_output_dir(out, force)
    with fileio.atomic_folder(out) as tmp:
        yield tmp
        _share_like_umask(tmp)


def check_vocab(path, vocab_size: int):
    """A vocab.txt must be UTF-8 and not hold more tokens than the embedding table has rows."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: vocab file not found (pass --vocab FILE)")
    try:
        with open(path, encoding="utf-8") as f:
            count = sum(1 for _ in f)
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: vocab file is not UTF-8 ({err})") from None
    if count > vocab_size:
        raise ConfigError(f"{path}: vocab has {count} tokens but the model's vocab_size is {vocab_size}")
    if count < vocab_size:
        note(f"{path} has {count} tokens, fewer than vocab_size {vocab_size} (rows past it are never used)")


def config_dict(config: ElectraConfig, architecture: Optional[str]) -> dict:
    """config.json content: the config's own fields and leftovers, minus stale source-specific keys."""
    data = {k: v for k, v in config.to_dict().items() if k not in STALE_CONFIG_KEYS}
    if architecture:
        data["architectures"] = [architecture]
    else:
        data.pop("architectures", None)
    return data


def do_lower_case(folder) -> bool:
    """The source's tokenizer_config.json do_lower_case (the official Chinese models: true, the default)."""
    path = os.path.join(os.fspath(folder), TOKENIZER_CONFIG_NAME)
    if not os.path.isfile(path):
        return True
    value = read_json(path)
    value = value.get("do_lower_case", True) if isinstance(value, dict) else True
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: do_lower_case must be true or false, got {value!r}")
    return value


def write_vocab(directory, vocab, lower: bool = True):
    """vocab.txt plus a tokenizer_config.json saying how to tokenize (read by ours, HF's and PaddleNLP's tokenizers)."""
    shutil.copyfile(vocab, os.path.join(directory, VOCAB_NAME))
    fileio.write_json(os.path.join(directory, TOKENIZER_CONFIG_NAME),
                      {"tokenizer_class": "ElectraTokenizer", "do_lower_case": lower})


def write_model_dir(directory, config: ElectraConfig, tensors: Dict[str, np.ndarray], head: str, vocab,
                    lower: bool = True):
    """Write config.json, model.safetensors, vocab.txt, tokenizer_config.json and their manifest.json into
    `directory`."""
    os.makedirs(directory, exist_ok=True)
    save_safetensors({k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()},
                     os.path.join(directory, WEIGHTS_NAME))
    fileio.write_json(os.path.join(directory, CONFIG_NAME), config_dict(config, ARCHITECTURES[head]))
    write_vocab(directory, vocab, lower)
    fileio.write_manifest(directory, [WEIGHTS_NAME, CONFIG_NAME, VOCAB_NAME, TOKENIZER_CONFIG_NAME])


def head_of_state(names: Iterable[str], source: str) -> str:
    """discriminator / generator / none from our tensor names; other heads (fine-tuning ones) are refused."""
    names = list(names)
    heads = [h for h, p in HEAD_PREFIXES.items() if any(n.startswith(p) for n in names)]
    known = ("electra", *[p[:-1] for p in HEAD_PREFIXES.values()])
    others = sorted({n.split(".")[0] for n in names if n.split(".")[0] not in known})
    if others:
        raise WeightsError(f"{source}: has a fine-tuning head ({', '.join(others)}.*): only pretraining "
                           "discriminators/generators and bare backbones can be exported")
    if len(heads) > 1:
        raise WeightsError(f"{source}: holds both discriminator and generator head tensors")
    return heads[0] if heads else "none"


def read_model_dir(directory):
    """(config, tensors, head, vocab path) of a paddle_electra model directory, checked against its config."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ConfigError(f"{directory}: model directory not found")
    config = ElectraConfig.from_json(os.path.join(directory, CONFIG_NAME))
    weights = os.path.join(directory, WEIGHTS_NAME)
    tensors = load_safetensors(weights)
    head = head_of_state(tensors, weights)
    check_model_state(tensors, config, head, weights)
    vocab = os.path.join(directory, VOCAB_NAME)
    if not os.path.isfile(vocab):
        raise ConfigError(f"{vocab}: vocab file not found (a model directory holds config.json, "
                          "model.safetensors and vocab.txt)")
    return config, tensors, head, vocab


# ---- reading HF weights --------------------------------------------------------------------------------------------
def _shards(directory, index_name):
    path = os.path.join(directory, index_name)
    weight_map = read_json(path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise WeightsError(f"{path}: no 'weight_map' object")
    files = sorted(set(weight_map.values()))
    for name in files:
        if os.path.basename(name) != name:
            raise WeightsError(f"{path}: shard name {name!r} is not a plain file name")
    return [os.path.join(directory, name) for name in files]


def load_torch_file(path) -> Dict[str, np.ndarray]:
    """A torch pickle file through `torch.load(weights_only=True)`: only tensors and plain containers come back."""
    import pickle
    try:
        import torch
    except ImportError:
        raise WeightsError(f"{path}: reading a .bin file needs torch (pip install torch), or use the "
                           "repository's model.safetensors") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsError(f"{path}: refused by torch's weights_only loader, the file holds more than tensors "
                           f"({first})") from None
    except Exception as err:  # truncated or not a torch file: RuntimeError, EOFError, zipfile errors ...
        raise WeightsError(f"{path}: not a readable torch weights file ({type(err).__name__}: "
                           f"{str(err).strip().splitlines()[0] if str(err).strip() else ''})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    out = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor")
        out[name] = value.detach().to(torch.float32).numpy() if value.is_floating_point() else value.numpy()
    return out


def read_hf_weights(directory, allow_pickle: bool) -> Tuple[Dict[str, np.ndarray], str]:
    """The tensors of an HF model folder: safetensors preferred (no torch needed), a .bin only with allow_pickle."""
    directory = os.fspath(directory)
    if os.path.isfile(os.path.join(directory, SAFETENSORS_NAME)):
        path = os.path.join(directory, SAFETENSORS_NAME)
        return load_safetensors(path), path
    if os.path.isfile(os.path.join(directory, SAFETENSORS_INDEX)):
        tensors = {}
        for shard in _shards(directory, SAFETENSORS_INDEX):
            tensors.update(load_safetensors(shard))
        return tensors, os.path.join(directory, SAFETENSORS_INDEX)
    for name, sharded in ((TORCH_NAME, False), (TORCH_INDEX, True)):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        if not allow_pickle:
            raise WeightsError(f"{path}: a torch .bin file is a pickle, which can run arbitrary code when loaded; "
                               "refusing it without --allow-pickle (prefer the repository's model.safetensors; pass "
                               "--allow-pickle only if you trust the file's source)")
        warn(f"loading {path}: {PICKLE_WARNING}")
        tensors = {}
        for shard in (_shards(directory, name) if sharded else [path]):
            tensors.update(load_torch_file(shard))
        return tensors, path
    raise WeightsError(f"{directory}: no {SAFETENSORS_NAME} or {TORCH_NAME} (an HF ELECTRA folder holds "
                       "config.json, vocab.txt and one of them)")


def _head_of_hf(tensors, architectures, weights_path, config_path) -> str:
    names = list(tensors)
    has_disc = any(n.startswith("discriminator_predictions.") for n in names)
    has_gen = any(n.startswith(("generator_predictions.", "generator_lm_head.")) for n in names)
    if has_disc and has_gen:
        raise WeightsError(f"{weights_path}: holds both discriminator and generator head tensors")
    found = "discriminator" if has_disc else "generator" if has_gen else "none"
    if architectures:
        arch = architectures[0] if isinstance(architectures, list) else architectures
        if not isinstance(arch, str) or arch not in HEAD_OF_ARCHITECTURE:
            raise WeightsError(f"{config_path}: architectures is {architectures}; only "
                               f"{', '.join(HEAD_OF_ARCHITECTURE)} convert (fine-tuning heads differ between HF and "
                               "the official code)")
        if HEAD_OF_ARCHITECTURE[arch] != found:
            raise WeightsError(f"{config_path}: architectures says {arch} but {weights_path} holds "
                               f"{found if found != 'none' else 'no head'} tensors")
    return found


def hf_state_to_paddle(tensors, config: ElectraConfig, head: str, weights_path: str, config_path: str):
    """Check an HF state dict's shapes against the config (with a hint when the config is the wrong one), then map."""
    if not any(n.startswith("electra.") for n in tensors) and any(n.startswith("embeddings.") for n in tensors):
        tensors = {(n if n in HF_IGNORABLE else f"electra.{n}"): v for n, v in tensors.items()}  # ElectraModel save
    layout = hf_layout(config, head)
    wrong = [f"{n!r} has shape {list(np.shape(tensors[n]))}, config implies {list(shape)}"
             for n, (shape, _) in layout.items() if n in tensors and tuple(np.shape(tensors[n])) != shape]
    missing = [n for n in layout if n not in tensors]
    if wrong or missing:
        problems = wrong + ([f"missing {len(missing)} tensor(s) such as {missing[0]!r}"] if missing else [])
        hint = ""
        if head == "generator":
            hint = (" (the config.json of hfl/chinese-legal-electra-small-generator on the HF hub is known to hold "
                    "the discriminator's config, see PaddleNLP PR #1086)")
        raise WeightsError(f"{config_path} does not describe the weights in {weights_path}: {summarize(problems)}. "
                           f"The weights look like {shapes_seen(tensors)}: pass --config with the right config"
                           f"{hint}")
    return hf_to_paddle(tensors, config, head, source=weights_path)


def from_hf(model_dir, out, allow_pickle=False, config_path=None, vocab=None, force=False) -> str:
    """Convert an hfl/*-style HF folder into a paddle_electra model directory; returns the head written."""
    model_dir = os.fspath(model_dir)
    if not os.path.isdir(model_dir):
        raise ConfigError(f"{model_dir}: --model folder not found")
    config_path = os.fspath(config_path) if config_path else os.path.join(model_dir, CONFIG_NAME)
    vocab = os.fspath(vocab) if vocab else os.path.join(model_dir, VOCAB_NAME)
    config = ElectraConfig.from_json(config_path)
    check_vocab(vocab, config.vocab_size)
    check_output_dir(out, force)
    tensors, weights_path = read_hf_weights(model_dir, allow_pickle)
    head = _head_of_hf(tensors, config.extras.get("architectures"), weights_path, config_path)
    ours = hf_state_to_paddle(tensors, config, head, weights_path, config_path)
    with output_dir(out, force) as tmp:
        write_model_dir(tmp, config, ours, head, vocab, do_lower_case(model_dir))
    return head


def to_hf(model_dir, out, force=False) -> str:
    """Write an HF folder (config.json, model.safetensors in HF names, vocab.txt) that transformers loads as is."""
    config, tensors, head, vocab = read_model_dir(model_dir)
    check_output_dir(out, force)
    hf = paddle_to_hf(tensors, config, head)
    hf.pop(HF_TIED, None)  # tied to the word embeddings; HF's own files leave it out and re-tie on load
    data = config_dict(config, ARCHITECTURES[head])
    data["model_type"] = "electra"
    with output_dir(out, force) as tmp:
        # transformers refuses safetensors files whose metadata "format" is not one of its frameworks
        save_safetensors(hf, os.path.join(tmp, SAFETENSORS_NAME), metadata={"format": "pt"})
        fileio.write_json(os.path.join(tmp, CONFIG_NAME), data)
        write_vocab(tmp, vocab, do_lower_case(model_dir))
    return head
