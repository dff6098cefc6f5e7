"""Package a model directory as an installable PaddleHub module archive.

    python -m converters package --model-dir DIR --name chinese-electra-small --out dist/ [--version 2.0.2]

writes dist/chinese_electra_small-2.0.2.tar.gz: one top-level folder `chinese_electra_small/` holding module.py (the
generated shim), config.json, vocab.txt (+ tokenizer_config.json), model.safetensors, README.md and manifest.json
(sha256 of every file, checked by `python -m modules.install`). The model directory is loaded and run once first, so a
broken or mismatched directory fails here, not at `hub install`. The archive is reproducible (sorted members, fixed
times and owners) and written atomically.
"""
from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import sys
import tarfile
import tempfile

from paddle_electra import fileio
from paddle_electra.errors import ConfigError, WeightsError, command
from paddle_electra.releases import HUB_VERSION, get_release
from paddle_electra.weights import CONFIG_NAME, VOCAB_NAME, WEIGHTS_NAME

TOKENIZER_CONFIG = "tokenizer_config.json"
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_MTIME = 946684800  # 2000-01-01: fixed member times make the archive byte-identical for identical inputs


SHAPE_FIELDS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "embedding_size",
                "vocab_size")


def check_release_shape(config, name, source, allow_other_shape=False):
    """A release name promises the release's shape: refuse another one unless explicitly allowed."""
    from paddle_electra.config import preset
    expected = preset(get_release(name).size)
    differ = [f for f in SHAPE_FIELDS if getattr(config, f) != getattr(expected, f)]
    if differ and not allow_other_shape:
        shape = ", ".join(f"{f} {getattr(config, f)}" for f in differ)
        promised = ", ".join(f"{f} {getattr(expected, f)}" for f in differ)
        raise ConfigError(f"{source}: {shape}, but the {name} module promises {promised}; choose the release "
                          f"name of this shape, or pass --allow-other-shape to package it as {name} anyway")


def validate_model_dir(model_dir, name, allow_other_shape=False):
    """Load the directory as hub will (config, tokenizer, strict weights) and run one forward; return the config."""
    from paddle_electra.tokenizer import ElectraTokenizer
    from paddle_electra.weights import read_config

    for required in (CONFIG_NAME, VOCAB_NAME, WEIGHTS_NAME):
        if not os.path.isfile(os.path.join(model_dir, required)):
            raise WeightsError(f"{os.path.join(model_dir, required)}: missing (a model directory holds "
                               f"{CONFIG_NAME}, {VOCAB_NAME} and {WEIGHTS_NAME}; convert checkpoints with "
                               f"`python -m converters` first)")
    config = read_config(model_dir)
    if config.extras.get("architectures") == ["ElectraForMaskedLM"]:
        raise ConfigError(f"{os.path.join(model_dir, CONFIG_NAME)}: this is a generator (ElectraForMaskedLM); "
                          f"PaddleHub modules carry the discriminator")
    check_release_shape(config, name, os.path.join(model_dir, CONFIG_NAME), allow_other_shape)
    tokenizer = ElectraTokenizer.from_pretrained(model_dir)
    if tokenizer.vocab_size > config.vocab_size:
        raise ConfigError(f"{model_dir}: vocab.txt has {tokenizer.vocab_size} tokens but config.json field "
                          f"'vocab_size' is {config.vocab_size}")
    import numpy as np
    import paddle
    from paddle_electra.modeling import ElectraEncoder
    from paddle_electra.weights import load_safetensors, load_state
    # the module loads the transformer only (heads start fresh, as in hub), so check exactly that
    weights = os.path.join(model_dir, WEIGHTS_NAME)
    model = ElectraEncoder(config)
    load_state(model, {k: v for k, v in load_safetensors(weights).items() if k.startswith("electra.")}, weights)
    model.eval()
    enc = tokenizer.encode("今天天气很好", max_seq_len=32)
    with paddle.no_grad():
        pooled, _ = model(paddle.to_tensor([enc["input_ids"]]), paddle.to_tensor([enc["token_type_ids"]]))
    if not np.isfinite(pooled.numpy()).all():
        raise WeightsError(f"{model_dir}: the model gives non-finite outputs on a test sentence")
    return config


def readme_text(name, version, config) -> str:
    release = get_release(name)
    return f"""# {name} {version}

{release.summary()}

Weights: {release.hf_discriminator} (or the model directory given to the packager), as `model.safetensors`
(no code runs when it is loaded). Shape of this archive's model: {config.num_hidden_layers} layers, hidden
{config.hidden_size}, embedding {config.embedding_size}, vocab {config.vocab_size}.

## Install (offline)

    python -m modules.install {release.package_name}-{version}.tar.gz   # checks paths and checksums first
    # or plain PaddleHub: hub install {release.package_name}-{version}.tar.gz

## Use

```python
import paddlehub as hub
model = hub.Module(name="{name}", task="seq-cls", label_map={{0: "negative", 1: "positive"}})
print(model.predict([["今天天气很好"]], max_seq_len=128, batch_size=8))
```

Tasks: None (embeddings: `get_embedding`), seq-cls, token-cls, text-matching, reading-comprehension
([context, question] -> answer text). `load_checkpoint=` takes hub.Trainer's `best_model/model.pdparams`: it is
read with an allow-list unpickler that only rebuilds numpy arrays (`allow_pickle=True` for full pickle, only for
files you trust), or a `.safetensors` file written by `module.save_checkpoint(path)`.

## Serve

    hub serving start -m {name}                 # PaddleHub's server: binds 0.0.0.0
    python -m modules.serve -m {name}           # ours: 127.0.0.1, request and batch size caps

    curl -s -X POST http://127.0.0.1:8866/predict/{name} -H 'Content-Type: application/json' \\
         -d '{{"data": [["今天天气很好"]]}}'
"""


def _add_file(tar, path, arcname):
    info = tarfile.TarInfo(arcname)
    info.size = os.path.getsize(path)
    info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = _MTIME, 0o644, 0, 0, "", ""
    with open(path, "rb") as f:
        tar.addfile(info, f)


def write_archive(folder, archive_path):
    """tar.gz of `folder` (as its basename) with sorted members, fixed times/owners/modes; atomic."""
    top = os.path.basename(folder.rstrip(os.sep))
    with fileio.atomic_path(archive_path) as tmp:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(top)
            info.type, info.mode, info.mtime, info.uname, info.gname = tarfile.DIRTYPE, 0o755, _MTIME, "", ""
            tar.addfile(info)
            for dirpath, dirnames, filenames in os.walk(folder):
                dirnames.sort()
                for name in sorted(filenames):
                    full = os.path.join(dirpath, name)
                    rel = os.path.relpath(full, folder).replace(os.sep, "/")
                    _add_file(tar, full, f"{top}/{rel}")
    return archive_path


def package(model_dir, name, out, version=None, allow_other_shape=False) -> str:
    """Validate `model_dir` (its shape must be the release's unless `allow_other_shape`), build the module folder for
    release `name` and write the archive into `out`; return the archive path."""
    from modules.generate import INIT_TEXT, render

    release = get_release(name)
    version = version or HUB_VERSION
    if not _VERSION.match(str(version)):
        raise ConfigError(f"--version must look like 2.0.2, got {version!r}")
    model_dir = os.fspath(model_dir)
    if not os.path.isdir(model_dir):
        raise ConfigError(f"{model_dir}: model directory not found")
    config = validate_model_dir(model_dir, release.name, allow_other_shape)
    return write_module_archive(model_dir, out, release.package_name, version, {
        "module.py": render(release.name, version),
        "__init__.py": INIT_TEXT.format(name=release.name),
        "README.md": readme_text(release.name, version, config)})


def write_module_archive(model_dir, out, package_name, version, generated: dict) -> str:
    """Stage `package_name`/ with the model files of `model_dir`, the `generated` files (name -> text) and
    manifest.json, and write it as the reproducible archive OUT/<package_name>-<version>.tar.gz; return its path.
    Shared by `package` (HFL releases) and pretrain/demo.py (its own model)."""
    from paddle_electra.hubenv import write_manifest
    os.makedirs(out, exist_ok=True)
    archive = os.path.join(out, f"{package_name}-{version}.tar.gz")
    staging = tempfile.mkdtemp(prefix=".package-", dir=out)
    try:
        folder = os.path.join(staging, package_name)
        os.makedirs(folder)
        for file_name in (CONFIG_NAME, VOCAB_NAME, TOKENIZER_CONFIG, WEIGHTS_NAME):
            source = os.path.join(model_dir, file_name)
            if os.path.isfile(source):
                shutil.copyfile(source, os.path.join(folder, file_name))
        for file_name, text in generated.items():
            fileio.write_text(os.path.join(folder, file_name), text)
        write_manifest(folder)
        write_archive(folder, archive)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return archive


def add_arguments(parser):
    parser.add_argument("--model-dir", required=True, help="paddle_electra model directory (config.json, vocab.txt, "
                                                           "model.safetensors)")
    parser.add_argument("--name", required=True, help="release name, e.g. chinese-electra-small")
    parser.add_argument("--out", required=True, help="folder for the archive")
    parser.add_argument("--version", default=HUB_VERSION, help=f"module version (default {HUB_VERSION})")
    parser.add_argument("--allow-other-shape", action="store_true",
                        help="package a model whose layers, width or vocab differ from the release's")
    return parser


@command
def run(args) -> int:
    """Entry for the `package` subcommand of `python -m converters`."""
    archive = package(args.model_dir, args.name, args.out, args.version, args.allow_other_shape)
    print(f"{archive}  sha256 {fileio.sha256_file(archive)}")
    return 0


def main(argv=None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="python -m converters package",
                                                   description="Write an installable PaddleHub module archive."))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
