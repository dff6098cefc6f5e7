"""Fetch the official weights: an `hfl/*` repository from the HF hub, or a local release zip, then convert them.

Both are thin on purpose: after the download (or the unzip) everything is `converters.hf.from_hf` or
`converters.tf_official.convert_checkpoint` on local files, which is what the tests exercise.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from typing import Optional

from paddle_electra import fileio
from paddle_electra.errors import ConfigError, WeightsError
from paddle_electra.weights import VOCAB_NAME

from .hf import (SAFETENSORS_INDEX, SAFETENSORS_NAME, TORCH_INDEX, TORCH_NAME, check_output_dir, from_hf, summarize)
from .tf_official import convert_checkpoint

MAX_UNZIPPED_BYTES = 16 << 30  # the large release is ~1 GB; anything far beyond that is a zip bomb, not weights
TEXT_FILES = ["config.json", "vocab.txt", "tokenizer_config.json"]


def download_hf(repo: str, out, revision: Optional[str] = None, allow_pickle: bool = False, cache_dir=None,
                config_path=None, force: bool = False) -> str:
    """snapshot_download the files an ELECTRA conversion needs (safetensors preferred), then `from_hf`."""
    check_output_dir(out, force)
    try:
        from huggingface_hub import HfApi, snapshot_download
        files = set(HfApi().list_repo_files(repo, revision=revision))
    except Exception as err:  # network, auth, missing repo: huggingface_hub has many error types
        raise WeightsError(f"{repo}: cannot list the repository on the HF hub ({type(err).__name__}: "
                           f"{str(err).strip().splitlines()[0] if str(err).strip() else ''})") from None
    if SAFETENSORS_NAME in files or SAFETENSORS_INDEX in files:
        patterns = ["*.safetensors", SAFETENSORS_INDEX]
    elif TORCH_NAME in files or TORCH_INDEX in files:
        if not allow_pickle:  # refuse before downloading hundreds of MB we would not open
            raise WeightsError(f"{repo}: has only {TORCH_NAME}, a pickle file that can run arbitrary code when "
                               "loaded; pass --allow-pickle if you trust this repository")
        patterns = ["pytorch_model*.bin", TORCH_INDEX]
    else:
        raise WeightsError(f"{repo}: no {SAFETENSORS_NAME} or {TORCH_NAME} in the repository "
                           f"(files: {summarize(sorted(files), 8)})")
    try:
        local = snapshot_download(repo_id=repo, revision=revision, cache_dir=cache_dir,
                                  allow_patterns=TEXT_FILES + patterns)
    except Exception as err:
        raise WeightsError(f"{repo}: download failed ({type(err).__name__}: "
                           f"{str(err).strip().splitlines()[0] if str(err).strip() else ''})") from None
    return from_hf(local, out, allow_pickle=allow_pickle, config_path=config_path, force=force)


# ---- release zips -------------------------------------------------------------------------------------------------
def _member_path(zip_path, info: zipfile.ZipInfo) -> str:
    """The member's relative path, or WeightsError if it is a link or would land outside the extraction folder."""
    if stat.S_ISLNK(info.external_attr >> 16):
        raise WeightsError(f"{zip_path}: member {info.filename!r} is a symbolic link; refusing the archive")
    problem = fileio.member_problem(info.filename)
    if problem:
        raise WeightsError(f"{zip_path}: member {info.filename!r} points outside the extraction folder "
                           f"({problem}); refusing the archive")
    return "/".join(p for p in info.filename.replace("\\", "/").split("/") if p not in ("", "."))


def safe_extract(zip_path, dest, max_bytes: int = MAX_UNZIPPED_BYTES):
    """Extract every member of `zip_path` under `dest`, after checking all of them (links, traversal, total size)."""
    zip_path = os.fspath(zip_path)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = [(info, _member_path(zip_path, info)) for info in archive.infolist()]
            total = sum(info.file_size for info, _ in members)
            if total > max_bytes:
                raise WeightsError(f"{zip_path}: unpacks to {total} bytes, more than the {max_bytes} allowed")
            root = os.path.realpath(dest)
            for info, rel in members:
                if not rel or rel.startswith("__MACOSX/"):
                    continue
                target = fileio.member_target(root, rel)
                if target is None:
                    raise WeightsError(f"{zip_path}: member {info.filename!r} resolves outside the extraction folder")
                if info.is_dir():
                    os.makedirs(target, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise WeightsError(f"{zip_path}: not a readable zip archive ({err})") from None
    except FileNotFoundError:
        raise ConfigError(f"{zip_path}: zip file not found") from None


def _find(root, match):
    """Files under `root` whose name satisfies `match`, sorted (macOS resource forks ignored)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__MACOSX"]
        found += [os.path.join(folder, f) for f in files if match(f)]
    return sorted(found)


def convert_release(zip_path, out, size=None, discriminator_config=None, generator_config=None, vocab=None,
                    skip_task_specific=False, force=False):
    """Unzip an official release safely into a temp folder beside `out`, then `convert_checkpoint` it."""
    zip_path = os.fspath(zip_path)
    if not os.path.isfile(zip_path):
        raise ConfigError(f"{zip_path}: zip file not found")
    check_output_dir(out, force)
    parent = os.path.dirname(os.path.abspath(os.fspath(out)))
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out))}.unzip-", dir=parent)
    try:
        safe_extract(zip_path, work)
        indexes = _find(work, lambda f: f.endswith(".index"))
        if len(indexes) != 1:
            names = [os.path.relpath(p, work) for p in indexes]
            raise WeightsError(f"{zip_path}: expected one TensorFlow checkpoint (*.index), found {len(indexes)}"
                               f"{': ' + ', '.join(names) if names else ''}")
        prefix = indexes[0][:-len(".index")]
        if vocab is None and not os.path.isfile(os.path.join(os.path.dirname(prefix), VOCAB_NAME)):
            vocabs = _find(work, lambda f: f == VOCAB_NAME)
            if len(vocabs) != 1:
                raise WeightsError(f"{zip_path}: no vocab.txt beside the checkpoint; pass --vocab")
            vocab = vocabs[0]
        return convert_checkpoint(prefix, out, size=size, discriminator_config=discriminator_config,
                                  generator_config=generator_config, vocab=vocab,
                                  skip_task_specific=skip_task_specific, force=force)
    finally:
        shutil.rmtree(work, ignore_errors=True)
