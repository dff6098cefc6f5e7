"""Package a model directory as an installable PaddleHub module archive.

    python -m converters package --model-dir DIR --name chinese-electra-small --out dist/ [--version 2.0.2]
    python -m converters package --model-dir DIR --name my-electra --description "Pretrained on ..." --out dist/

A release name (one of the 11 in paddle_electra.releases) takes its summary from the registry and must have the
release's shape; any other name is the user's own model and needs `--description` (the summary is then the model's
shape and parameter count, read from the directory, followed by that sentence).

writes dist/chinese_electra_small-2.0.2.tar.gz: one top-level folder `chinese_electra_small/` holding module.py (the
generated shim), config.json, vocab.txt (+ tokenizer_config.json), model.safetensors, README.md and manifest.json
(sha256 of every file, checked by `python -m modules.install`). The model directory is loaded and run once first, so a
broken or mismatched directory fails here, not at `hub install`. The archive is reproducible (sorted members, fixed
times and owners) and written atomically.
"""
from __future__ import annotations

import gzip
import os
import re
import shutil
import sys
import tarfile
import tempfile

from paddle_electra import fileio
from paddle_electra.errors import ConfigError, WeightsError, command
from paddle_electra.releases import (HUB_VERSION, class_name, get_release, is_release, module_summary, package_name,
                                     release_names)
from paddle_electra.weights import CONFIG_NAME, VOCAB_NAME, WEIGHTS_NAME, parameter_count
from paddle_electra.runconfig import ArgumentParser

TOKENIZER_CONFIG = "tokenizer_config.json"
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_MODULE_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")  # hub names: lower case, digits, single dashes
_MTIME = 946684800  # 2000-01-01: fixed member times make the archive byte-identical for identical inputs


SHAPE_FIELDS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "embedding_size",
                "vocab_size")


def check_release_shape(config, name, source, allow_other_shape=False) -> list:
    """A release name promises the release's shape: refuse another one unless explicitly allowed; return the shape
    fields that differ (allowed)."""
    from paddle_electra.config import preset
    expected = preset(get_release(name).size)
    differ = [f for f in SHAPE_FIELDS if getattr(config, f) != getattr(expected, f)]
    if differ and not allow_other_shape:
        shape = ", ".join(f"{f} {getattr(config, f)}" for f in differ)
        promised = ", ".join(f"{f} {getattr(expected, f)}" for f in differ)
        raise ConfigError(f"{source}: {shape}, but the {name} module promises {promised}; choose the release "
                          f"name of this shape, or pass --allow-other-shape to package it as {name} anyway")
    return differ


def validate_model_dir(model_dir, name=None, allow_other_shape=False):
    """Load the directory as hub will (config, tokenizer, strict weights) and run one forward; return the config.
    With a release `name`, the shape must be the release's (unless `allow_other_shape`)."""
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
    if name is not None:
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


def readme_text(name, version, config, summary, weights_from) -> str:
    archive = f"{package_name(name)}-{version}.tar.gz"
    return f"""# {name} {version}

{summary}

Weights: {weights_from}, as `model.safetensors` (no code runs when it is loaded). Shape of this archive's model:
{config.num_hidden_layers} layers, hidden {config.hidden_size}, embedding {config.embedding_size}, vocab
{config.vocab_size}.

## Install (offline)

    python -m modules.install {archive}   # checks paths and checksums first
    # or plain PaddleHub: hub install {archive}

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


# module.py of an archive comes from this template (hub reads its @moduleinfo values with `ast`); the 11 release folders
# in modules/ are rendered from it too (`python -m modules.generate`)
TEMPLATE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "module.py.tmpl")
RELEASE_AUTHOR = "ymcui (HFL); paddle-electra port"  # only the 11 releases name HFL as the weights' authors
INIT_TEXT = '"""PaddleHub module {name} (generated by paddle_electra/hub/package.py; the code is in module.py)."""\n'


def _literal(value, field):
    # hub reads these with ast and we write them between double quotes: keep them plain
    if any(c in value for c in '"\\\n'):
        raise ConfigError(f"{field} {value!r} cannot hold quotes, backslashes or newlines")
    return value


def render_module(name, version, summary, author, params, layers, origin) -> str:
    """module.py text of any module: the 11 releases (`render_release`) and a user's own model (`package(...,
    description=...)`)."""
    with open(TEMPLATE_PATH, encoding="utf-8") as f:
        template = f.read()
    return template.format(
        name=_literal(name, "name"), version=_literal(version, "version"), summary=_literal(summary, "summary"),
        author=_literal(author, "author"), class_name=class_name(name),
        params=params, layers=layers, origin=origin)


def render_release(name, version=None) -> str:
    """module.py text of the release `name`, with `version` (default: the registry's hub version)."""
    from paddle_electra.config import preset
    release = get_release(name)
    return render_module(release.name, version or HUB_VERSION, release.summary(), RELEASE_AUTHOR, release.params,
                         preset(release.size).num_hidden_layers, "HFL Chinese ELECTRA")


DEFAULT_AUTHOR = "trained with paddle-electra"


def package(model_dir, name, out, version=None, allow_other_shape=False, description=None,
            author=DEFAULT_AUTHOR) -> str:
    """Validate `model_dir`, build the module folder `name` and write the archive into `out`; return its path.

    A release `name` (no `description`) takes the registry's summary and needs the release's shape unless
    `allow_other_shape`. Any other `name` is the user's own model: `description` is required (one sentence: what it
    was trained on), and the summary starts with the shape and parameter count read from the directory."""
    version = version or HUB_VERSION
    if not _VERSION.match(str(version)):
        raise ConfigError(f"--version must look like 2.0.2, got {version!r}")
    model_dir = os.fspath(model_dir)
    if not os.path.isdir(model_dir):
        raise ConfigError(f"{model_dir}: model directory not found")
    if description is None:
        if not is_release(name):  # get_release's error lists the 11 names; say how to package one's own model
            raise ConfigError(f"--name {name!r} is not a released model (known: {', '.join(release_names())}); "
                              f"to package your own model, give it --description \"Pretrained on ...\"")
        release = get_release(name)
        config = validate_model_dir(model_dir, release.name, allow_other_shape)
        name = release.name
        if check_release_shape(config, name, model_dir, allow_other_shape):
            # --allow-other-shape: the user's own weights under a release name; HFL is not their author
            params = f"{parameter_count(os.path.join(model_dir, WEIGHTS_NAME)) / 1e6:.1f}M"
            summary = module_summary(name, config, params, f"Not the {name} release: a model of another shape "
                                     f"packaged under its name (--allow-other-shape)")
            module_py = render_module(name, version, summary, author, params, config.num_hidden_layers, author)
            weights_from = (f"the model directory given to the packager "
                            f"({os.path.basename(os.path.abspath(model_dir))})")
        else:
            summary = release.summary()
            module_py = render_release(name, version)
            weights_from = f"{release.hf_discriminator} (or the model directory given to the packager)"
    else:
        if is_release(name):
            raise ConfigError(f"--name {name!r} is a released model's name; --description is for your own model, "
                              f"which needs a name of its own")
        if not _MODULE_NAME.match(str(name)):
            raise ConfigError(f"--name must be lower-case letters and digits joined by single dashes (a PaddleHub "
                              f"module name, e.g. my-electra-small), got {name!r}")
        config = validate_model_dir(model_dir)
        params = f"{parameter_count(os.path.join(model_dir, WEIGHTS_NAME)) / 1e6:.1f}M"
        summary = module_summary(name, config, params, description)
        module_py = render_module(name, version, summary, author, params, config.num_hidden_layers, author)
        weights_from = f"the model directory given to the packager ({os.path.basename(os.path.abspath(model_dir))})"
    return write_module_archive(model_dir, out, package_name(name), version, {
        "module.py": module_py, "__init__.py": INIT_TEXT.format(name=name),
        "README.md": readme_text(name, version, config, summary, weights_from)})


def write_module_archive(model_dir, out, package_name, version, generated: dict) -> str:
    """Stage `package_name`/ with the model files of `model_dir`, the `generated` files (name -> text) and
    manifest.json, and write it as the reproducible archive OUT/<package_name>-<version>.tar.gz; return its path."""
    from paddle_electra.hub.home import write_manifest
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
    parser.add_argument("--name", required=True, help="release name, e.g. chinese-electra-small, or your own model's "
                                                      "name (with --description)")
    parser.add_argument("--description", default=None,
                        help="your own model (not a release): one sentence on what it was trained on, shown after "
                             "its shape and size in the module's summary")
    parser.add_argument("--author", default=DEFAULT_AUTHOR, help="your own model: the module's author field")
    parser.add_argument("--out", required=True, help="folder for the archive")
    parser.add_argument("--version", default=HUB_VERSION, help=f"module version (default {HUB_VERSION})")
    parser.add_argument("--allow-other-shape", action="store_true",
                        help="package a model whose layers, width or vocab differ from the release's")
    return parser


@command
def main(argv=None) -> int:
    parser = add_arguments(ArgumentParser(prog="python -m converters package",
                                          description="Write an installable PaddleHub module archive."))
    args = parser.parse_args(argv)
    archive = package(args.model_dir, args.name, args.out, args.version, args.allow_other_shape,
                      args.description, args.author)
    print(f"{archive}  sha256 {fileio.sha256_file(archive)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
