"""Files are written atomically and damaged files are refused by name.

- fileio's atomic writes are never seen half-written, whenever the writer is SIGKILLed; a failed write leaves the
  old file and no temp file.
- Every file of a pretraining checkpoint, of a model directory's weights, of a fine-tuning checkpoint and every part
  of a module archive: truncated, emptied, deleted or with a byte flipped, it is refused with an ElectraError whose
  message names the damaged file (and the newest good pretraining checkpoint is used instead).
- A source audit: every call that writes a file (library, converters, modules, pretrain, finetune, bench) is on a
  reviewed list, with the reason it is atomic or a pointer to the known defect; a new write site fails the audit
  until someone reviews it.
"""
import ast
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import paddle_electra  # noqa: F401  (environment before paddle)
import paddle

from paddle_electra.errors import ConfigError, ElectraError, WeightsError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def damage(path, how, position=None):
    """Damage a file in place: 'truncate' (to half, or to `position`), 'empty', 'delete', 'flip' (one byte at
    `position`, default the middle)."""
    data = open(path, "rb").read()
    if how == "delete":
        os.remove(path)
        return
    if how == "empty":
        data = b""
    elif how == "truncate":
        data = data[: len(data) // 2 if position is None else position]
    elif how == "flip":
        i = len(data) // 2 if position is None else position % len(data)
        data = data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1:]
    with open(path, "wb") as f:
        f.write(data)


# =====================================================================================================================
# fileio: atomic replacement under SIGKILL
# =====================================================================================================================
WRITER = r'''
import hashlib, importlib.util, os, sys
spec = importlib.util.spec_from_file_location("fileio", sys.argv[1])
fileio = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fileio)
target, i = sys.argv[2], 0
while True:  # each version: a header with the body's length and sha256, then 4 MiB of version-specific bytes
    body = (b"%08d" % i) * (1 << 19)
    fileio.write_bytes(target, b"%d %s\n" % (len(body), hashlib.sha256(body).hexdigest().encode()) + body)
    i += 1
    print(i, flush=True)
'''


def complete(path):
    with open(path, "rb") as f:
        header = f.readline().split()
        body = f.read()
    return len(header) == 2 and int(header[0]) == len(body) and hashlib.sha256(body).hexdigest() == header[1].decode()


def test_atomic_write_is_never_seen_half_written(tmp_path):
    """20 SIGKILLs at random moments of a loop rewriting a 4 MiB file: the file is always one complete version."""
    writer = tmp_path / "writer.py"
    writer.write_text(WRITER, encoding="utf-8")
    target = tmp_path / "out" / "data.bin"
    rng = random.Random(7)
    versions = []
    for _ in range(20):
        process = subprocess.Popen([sys.executable, str(writer), os.path.join(REPO, "paddle_electra", "fileio.py"),
                                    str(target)], stdout=subprocess.PIPE)
        process.stdout.readline()  # at least one version written
        time.sleep(rng.uniform(0.0, 0.15))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert complete(target)
        with open(target, "rb") as f:
            f.readline()
            versions.append(int(f.read(8)))
    temps = [n for n in os.listdir(target.parent) if n != "data.bin"]
    print(f"\n20 SIGKILLs during atomic rewrites: the file was complete every time (versions {versions[:8]}...); "
          f"{len(temps)} hidden temp file(s) left behind")
    assert all(n.startswith(".data.bin.") and n.endswith(".tmp") for n in temps)


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    from paddle_electra.fileio import write_json
    from paddle_electra.weights import load_safetensors, save_safetensors
    write_json(tmp_path / "a.json", {"ok": 1})
    with pytest.raises(TypeError):
        write_json(tmp_path / "a.json", {"not json": object()})
    save_safetensors({"w": np.ones(3, np.float32)}, tmp_path / "w.safetensors")
    with pytest.raises(Exception):
        save_safetensors({"w": "not an array"}, tmp_path / "w.safetensors")
    assert json.load(open(tmp_path / "a.json")) == {"ok": 1}
    np.testing.assert_array_equal(load_safetensors(tmp_path / "w.safetensors")["w"], np.ones(3, np.float32))
    assert sorted(os.listdir(tmp_path)) == ["a.json", "w.safetensors"]


# =====================================================================================================================
# pretraining checkpoints
# =====================================================================================================================
def _tiny_tokenizer_and_config(vocab_path):
    """A 50-token vocab written at vocab_path, its tokenizer, and a one-layer 16-wide discriminator config for it."""
    from paddle_electra import preset
    from paddle_electra.tokenizer import SPECIAL_TOKENS, ElectraTokenizer
    vocab_path.write_text("\n".join(list(SPECIAL_TOKENS) + [chr(0x4E00 + i) for i in range(45)]) + "\n",
                          encoding="utf-8")
    config = preset("tiny").replace(vocab_size=50, hidden_size=16, intermediate_size=32, embedding_size=8,
                                    num_hidden_layers=1, num_attention_heads=2)
    return ElectraTokenizer(str(vocab_path)), config


@pytest.fixture(scope="module")
def pretrain_checkpoints(tmp_path_factory):
    """Two checkpoints (steps 1 and 2) of a tiny ElectraForPretraining with its optimizer and tokenizer."""
    from paddle_electra import preset
    from paddle_electra.optim import build_optimizer, linear_warmup_decay
    from paddle_electra.pretraining import ElectraForPretraining
    from pretrain.checkpoint import save_checkpoint
    root = tmp_path_factory.mktemp("ckpt")
    tokenizer, disc = _tiny_tokenizer_and_config(root / "vocab.txt")
    gen = preset("tiny", "generator").replace(vocab_size=50, hidden_size=8, intermediate_size=16, embedding_size=8,
                                              num_hidden_layers=1, num_attention_heads=1)
    paddle.seed(1)
    model = ElectraForPretraining(disc, gen, tokenizer.special_token_ids, tokenizer.mask_token_id)
    schedule = linear_warmup_decay(1e-3, 2, 10)
    optimizer = build_optimizer(model, schedule)
    ids = paddle.to_tensor(np.random.RandomState(0).randint(5, 50, (2, 12)))
    for step in (1, 2):
        out = model(ids, paddle.zeros_like(ids), paddle.ones_like(ids))
        out.loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        schedule.step()
        save_checkpoint(str(root / "checkpoints"), step, model, optimizer, schedule, {"data": {}}, tokenizer)
    return root / "checkpoints", (disc, gen, tokenizer)


CHECKPOINT_FILES = ["model.safetensors", "optimizer.safetensors", "trainer_state.json", "vocab.txt",
                    "tokenizer_config.json"]


@pytest.mark.parametrize("name", CHECKPOINT_FILES + ["manifest.json"])
@pytest.mark.parametrize("how", ["truncate", "flip", "empty", "delete"])
def test_damaged_pretraining_checkpoint_is_refused_by_name(pretrain_checkpoints, tmp_path, name, how):
    from paddle_electra.pretraining import ElectraForPretraining
    from pretrain.checkpoint import latest_checkpoint, load_checkpoint, verify_checkpoint
    source, (disc, gen, tokenizer) = pretrain_checkpoints
    root = tmp_path / "checkpoints"
    shutil.copytree(source, root)
    newest = root / "step-00000002"
    target = newest / name
    if name == "manifest.json" and how == "flip":
        # a changed digest (a flip elsewhere in the JSON may just break its syntax, tested by the other cases)
        manifest = json.load(open(target))
        digest = manifest["files"]["trainer_state.json"]["sha256"]
        manifest["files"]["trainer_state.json"]["sha256"] = ("0" if digest[0] != "0" else "1") + digest[1:]
        target.write_text(json.dumps(manifest), encoding="utf-8")
        named = newest / "trainer_state.json"
    else:
        damage(target, how)
        named = target
    with pytest.raises(WeightsError) as err:
        verify_checkpoint(str(newest))
    assert str(named) in str(err.value)
    model = ElectraForPretraining(disc, gen, tokenizer.special_token_ids, tokenizer.mask_token_id)
    with pytest.raises(WeightsError, match=str(newest)):
        load_checkpoint(str(newest), model)
    warnings = []
    assert latest_checkpoint(str(root), log=warnings.append).endswith("step-00000001")
    if not (name == "manifest.json" and how == "delete"):  # without a manifest it is not even listed
        assert len(warnings) == 1 and str(newest) in warnings[0]


# =====================================================================================================================
# model directories (safetensors) and fine-tuning checkpoints
# =====================================================================================================================
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from paddle_electra.modeling import ElectraDiscriminator
    root = tmp_path_factory.mktemp("model")
    tokenizer, config = _tiny_tokenizer_and_config(root / "vocab-src.txt")
    paddle.seed(2)
    ElectraDiscriminator(config).save_pretrained(str(root / "model"), tokenizer=tokenizer)
    return root / "model"


def _safetensors_positions(path):
    """Byte positions worth damaging in a safetensors file: the length prefix, the JSON header (a tensor's
    offsets, the checksum in the metadata), the first and the last data byte."""
    data = open(path, "rb").read()
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n]
    return {"length": 0, "offsets": 8 + header.index(b"data_offsets") + 16,
            "checksum": 8 + header.index(b"paddle_electra_sha256") + 30, "first-data": 8 + n,
            "last-data": len(data) - 1}


@pytest.mark.parametrize("how, where", [("flip", "length"), ("flip", "offsets"), ("flip", "checksum"),
                                        ("flip", "first-data"), ("flip", "last-data"), ("truncate", "first-data"),
                                        ("truncate", "last-data"), ("truncate", 7), ("empty", None),
                                        ("delete", None)])
def test_damaged_model_weights_are_refused_by_name(model_dir, tmp_path, how, where):
    from paddle_electra.modeling import ElectraDiscriminator
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    weights = folder / "model.safetensors"
    position = _safetensors_positions(weights).get(where, where)
    damage(weights, how, position)
    with pytest.raises(WeightsError) as err:
        ElectraDiscriminator.from_pretrained(folder)
    assert str(weights) in str(err.value)


@pytest.mark.parametrize("how", ["truncate", "empty", "delete"])
def test_damaged_model_config_is_refused_by_name(model_dir, tmp_path, how):
    from paddle_electra.modeling import ElectraDiscriminator
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    damage(folder / "config.json", how)
    # the directory's manifest.json catches it first (WeightsError); without a manifest the JSON reader does
    with pytest.raises((ConfigError, WeightsError), match=str(folder / "config.json")):
        ElectraDiscriminator.from_pretrained(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(ConfigError, match=str(folder / "config.json")):
        ElectraDiscriminator.from_pretrained(folder)


@pytest.mark.parametrize("what", ["config-value", "vocab-truncated", "tokenizer-config"])
def test_altered_model_config_or_vocab_is_refused(model_dir, tmp_path, what):
    """manifest.json of a model directory covers config.json and vocab.txt, not only the weights: a changed dropout or
    a vocab cut in half would otherwise load without a word."""
    from paddle_electra.modeling import ElectraDiscriminator
    from paddle_electra.tokenizer import ElectraTokenizer
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    ElectraDiscriminator.from_pretrained(folder)  # the untouched copy loads
    ElectraTokenizer.from_pretrained(str(folder))
    if what == "config-value":
        config = json.load(open(folder / "config.json"))
        config["hidden_dropout_prob"] = 0.5
        (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
        load, bad = (lambda: ElectraDiscriminator.from_pretrained(folder)), "config.json"
    elif what == "vocab-truncated":
        lines = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
        (folder / "vocab.txt").write_text("\n".join(lines[: len(lines) // 2]), encoding="utf-8")
        load, bad = (lambda: ElectraTokenizer.from_pretrained(str(folder))), "vocab.txt"
    else:
        (folder / "tokenizer_config.json").write_text('{"do_lower_case": false}', encoding="utf-8")
        load, bad = (lambda: ElectraTokenizer.from_pretrained(str(folder))), "tokenizer_config.json"
    with pytest.raises(ElectraError, match=rf"{bad}: checksum mismatch with manifest.json"):
        load()


def test_model_directory_manifest_lists_every_model_file_and_foreign_folders_load(model_dir, tmp_path):
    """save_pretrained's manifest names all four files; a folder without manifest.json (HF's, PaddleNLP's) loads."""
    from paddle_electra.fileio import verify_manifest
    from paddle_electra.modeling import ElectraDiscriminator
    from paddle_electra.tokenizer import ElectraTokenizer
    manifest = verify_manifest(str(model_dir), exhaustive=True)
    assert sorted(manifest["files"]) == ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
    folder = tmp_path / "foreign"
    shutil.copytree(model_dir, folder)
    (folder / "manifest.json").unlink()
    config = json.load(open(folder / "config.json"))
    config["hidden_dropout_prob"] = 0.0  # a foreign folder is taken as it is
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert ElectraDiscriminator.from_pretrained(folder).config.hidden_dropout_prob == 0.0
    ElectraTokenizer.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def finetune_checkpoints(model_dir, tmp_path_factory):
    """What finetune/loop.py leaves: best_model/model.safetensors (our checksum) and the epoch checkpoint
    epoch_N/model.pdparams|.pdopt (paddle.save, a pickle, with a sha256 manifest)."""
    from finetune.loop import save_epoch_checkpoint
    from paddle_electra.hub.module import ElectraHubModule
    root = tmp_path_factory.mktemp("ft-ckpt")
    module = ElectraHubModule(model_dir=str(model_dir), task="seq-cls", num_classes=2)
    module.save_checkpoint(str(root / "best_model" / "model.safetensors"))
    save_epoch_checkpoint(str(root), 1, module.state_dict(), {"LR_Scheduler": {"last_epoch": 1}})
    return root


@pytest.mark.parametrize("file", ["best_model/model.safetensors", "epoch_1/model.pdparams"])
@pytest.mark.parametrize("how", ["truncate", "empty", "flip-data"])
def test_damaged_finetuning_checkpoint_is_refused_by_name(model_dir, finetune_checkpoints, tmp_path, file, how):
    from finetune.loop import latest_epoch_checkpoint, verify_epoch_checkpoint
    from paddle_electra.hub.module import ElectraHubModule
    if file.endswith(".pdparams"):  # resuming verifies the epoch folder's manifest before paddle.load
        folder = tmp_path / "seed"
        shutil.copytree(finetune_checkpoints / "epoch_1", folder / "epoch_1")
        path = folder / file
        damage(path, "flip" if how == "flip-data" else how)
        with pytest.raises(WeightsError) as err:
            verify_epoch_checkpoint(str(folder / "epoch_1"))
        assert str(path) in str(err.value)
        assert latest_epoch_checkpoint(str(folder)) == (0, None)  # skipped: the run starts over
        return
    path = tmp_path / os.path.basename(file)
    shutil.copy(finetune_checkpoints / file, path)
    if how == "flip-data":
        damage(path, "flip", _safetensors_positions(path)["last-data"])
    else:
        damage(path, how)
    with pytest.raises(WeightsError) as err:
        ElectraHubModule(model_dir=str(model_dir), task="seq-cls", num_classes=2, load_checkpoint=str(path))
    assert str(path) in str(err.value)


# =====================================================================================================================
# module archives
# =====================================================================================================================
@pytest.fixture(scope="module")
def archive(model_dir, tmp_path_factory):
    from paddle_electra.hub.package import package
    return package(str(model_dir), "chinese-electra-small", str(tmp_path_factory.mktemp("archive")),
                   allow_other_shape=True)


@pytest.mark.parametrize("how, where", [("truncate", 0.5), ("truncate", 0.98), ("truncate", 10), ("empty", None),
                                        ("flip", 0.3), ("flip", 0.6), ("flip", 0.9), ("flip", -5)])
def test_damaged_module_archive_is_refused_before_install(archive, tmp_path, how, where):
    """The checks modules.install runs before hub copies anything (checksums, member check, extraction, manifest): a
    damaged archive fails one of them, naming the archive (or the extracted file that fails the manifest). Damage to
    gzip's trailer (("flip", -5)), which tarfile never reads, is caught by the stream's own CRC."""
    from paddle_electra.hub.home import check_archive, safe_extract, verify_manifest
    path = tmp_path / os.path.basename(archive)
    shutil.copy(archive, path)
    size = os.path.getsize(path)
    position = None if where is None else int(where * size) if isinstance(where, float) else where % size
    damage(path, how, position)
    with pytest.raises(ElectraError) as err:
        check_archive(str(path))
        folder = safe_extract(str(path), str(tmp_path / "staging"))
        verify_manifest(folder)
    assert str(path) in str(err.value) or str(tmp_path / "staging") in str(err.value), err.value


# =====================================================================================================================
# source audit
# =====================================================================================================================
AUDITED = ("paddle_electra", "pretrain", "finetune", "converters", "modules", "bench")
WRITE_CALLS = {"save", "savez", "savez_compressed", "savefig", "copyfile", "copy2", "copytree", "move", "dump",
               "save_file", "write_text", "write_bytes", "writestr", "extractall"}

# Reviewed write sites, keyed by call site (file, enclosing function, the call and its ordinal), and why each is atomic. An entry
# that no longer matches a call is stale and fails the audit too, so the reasons stay true.
ATOMIC = {
    ("paddle_electra/fileio.py", "atomic_path", "open"): "fsync of the temp before os.replace",
    ("paddle_electra/fileio.py", "write_bytes", "open"): "into atomic_path's temp",
    ("paddle_electra/fileio.py", "write_text", "write_bytes"): "fileio.write_bytes",
    ("paddle_electra/fileio.py", "write_json", "write_text"): "fileio.write_text",
    ("paddle_electra/fileio.py", "save_figure", "fig.savefig"): "into atomic_path's temp",
    ("paddle_electra/tokenizer.py", "ElectraTokenizer.save_pretrained", "write_text"): "fileio.write_text",
    ("paddle_electra/tokenizer.py", "build_vocab", "write_text"): "fileio.write_text",
    ("paddle_electra/weights.py", "save_safetensors", "save_file"): "safetensors save_file into atomic_path's temp",
    ("paddle_electra/export.py", "export_for_inference", "paddle.jit.save"): "inside fileio.atomic_folder's staging "
                                                                             "folder, with a sha256 manifest",
    ("paddle_electra/export.py", "quantize_onnx", "onnx.save"): "onnx.save into fileio.atomic_path's temp",
    ("paddle_electra/hub/home.py", "write_offline_config", "fileio.write_text"): "fileio.write_text",
    ("paddle_electra/hub/home.py", "safe_extract.copy", "open"): "extracts into the caller's temp staging folder",
    ("paddle_electra/hub/package.py", "write_archive", "open"): "tar.gz written inside fileio.atomic_path",
    ("paddle_electra/hub/package.py", "write_archive", "gzip.GzipFile"): "tar.gz written inside fileio.atomic_path",
    ("paddle_electra/hub/package.py", "write_archive", "tarfile.open"): "tar.gz written inside fileio.atomic_path",
    ("paddle_electra/hub/package.py", "write_module_archive", "shutil.copyfile"):
        "into a temp staging folder; the archive via write_archive",
    ("paddle_electra/hub/package.py", "write_module_archive", "fileio.write_text"):
        "into a temp staging folder; the archive via write_archive",
    ("converters/paddlenlp_weights.py", "to_paddlenlp", "paddle.save"): "inside hf.output_dir's staging folder "
                                                                        "(fileio.atomic_folder)",
    ("converters/hf.py", "write_vocab", "shutil.copyfile"): "inside hf.output_dir's staging folder "
                                                            "(fileio.atomic_folder)",
    ("converters/download.py", "safe_extract", "open"): "unzips into a temp folder beside --out",
    ("modules/generate.py", "main", "write_text"): "fileio.write_text",
    ("pretrain/data.py", "ShardWriter._open", "open"): "shards inside the dataset's staging folder "
                                                       "(fileio.atomic_folder)",
    ("pretrain/data.py", "build_dataset", "open"): "inside the staging folder of fileio.atomic_folder",
    ("pretrain/data.py", "build_dataset", "np.save"): "inside the staging folder of fileio.atomic_folder",
    ("pretrain/data.py", "merge_datasets", "np.save"): "inside the staging folder of fileio.atomic_folder",
    ("pretrain/demo/probe.py", "main", "write_text"): "fileio.write_text",
    ("pretrain/data.py", "merge_datasets", "shutil.copyfile"): "inside the staging folder of fileio.atomic_folder",
    ("pretrain/corpus.py", "write_corpus", "write_text"): "fileio.write_text",
    ("pretrain/demo/pipeline.py", "stage_corpus", "write_text"): "fileio.write_text",
    ("pretrain/demo/pipeline.py", "add_review_text", "write_text"): "fileio.write_text",
    ("pretrain/demo/pipeline.py", "run_demo", "write_text"): "fileio.write_text",
    ("pretrain/demo/curve.py", "run_curve", "write_text"): "fileio.write_text",
    ("pretrain/demo/curve.py", "main.run", "write_bytes"): "fileio.write_bytes",
    ("pretrain/demo/domain.py", "stage_split", "write_text"): "fileio.write_text",
    ("pretrain/demo/domain.py", "stage_split", "write_text #2"): "fileio.write_text",
    ("pretrain/demo/domain.py", "stage_split", "write_text #3"): "fileio.write_text",
    ("pretrain/demo/domain.py", "stage_split", "write_bytes"): "fileio.write_bytes",
    ("pretrain/demo/domain.py", "run_domain", "write_text"): "fileio.write_text",
    ("pretrain/demo/domain.py", "main.run", "write_bytes"): "fileio.write_bytes",
    ("pretrain/train.py", "train", "write_text"): "the logs cut back to the resume point: fileio.write_text",
    ("finetune/kinds/classification.py", "ClassificationTask.write_predictions", "write_text"): "fileio.write_text",
    ("finetune/kinds/tagging.py", "TaggingTask.write_predictions", "write_text"): "fileio.write_text",
    ("finetune/loop.py", "save_epoch_checkpoint", "paddle.save"): "inside fileio.atomic_folder's staging folder, "
                                                                  "with a sha256 manifest",
    ("converters/tools/make_tf_fixture.py", "save_with_tf", "saver.save"): "developer tool: writes into a temp dir",
    ("converters/tools/make_tf_fixture.py", "write_config", "open"): "developer tool: writes into a temp dir",
    ("converters/tools/make_tf_fixture.py", "main", "np.savez"): "developer tool: temp dir, os.replace per file",
    ("converters/tools/make_tf_fixture.py", "main", "np.savez #2"): "developer tool: temp dir, os.replace per file",
    ("converters/tools/make_tf_fixture.py", "main", "open"): "developer tool: temp dir, os.replace per file",
    ("bench/gpu_pretrain.py", "main", "open"): "json to OUT.tmp, then os.replace",
    ("bench/gpu_pretrain.py", "main", "json.dump"): "json to OUT.tmp, then os.replace",
    ("bench/__main__.py", "main", "write_text"): "fileio.write_text",
    ("bench/demo_step.py", "main", "write_text"): "fileio.write_text",
    ("bench/profile_step.py", "main", "write_text"): "fileio.write_text",
    ("bench/corpus.py", "corpus_path_plain", "write_text"): "fileio.write_text",
    ("bench/data_builder.py", "corpus_copies", "write_bytes"): "fileio.write_bytes",
}
# Append-only logs, the only files written in place. Why that is safe: each is first cut back to the resume point by
# an atomic rewrite (pretrain/train.py, fileio.write_text), then appended one JSON line at a time and flushed; a kill
# can leave at most a cut last line, which the readers (runtime.read_jsonl) skip, and a resume cuts the log back to
# its checkpoint again. VisualDL's own log writers are out of scope, and so are writes inside third-party code.
KNOWN_NON_ATOMIC = {
    ("pretrain/train.py", "train", "open"): "losses.jsonl: appended one line per step after the atomic cut-back",
    ("pretrain/train.py", "train.run_eval", "open"): "eval.jsonl: appended one line per evaluation after the atomic "
                                                     "cut-back",
    ("pretrain/demo/pipeline.py", "Pipeline.children", "open"): "a child's console output, streamed to its log file while it "
                                                       "runs; the stage's result is read from the child's own atomic "
                                                       "files (metrics.json), never from this log",
}
LOG_WRITERS = {"LogWriter"}  # VisualDL: excepted by the issue


def write_sites():
    """(file, enclosing function, call, line) of every call that writes a file, found in the source, in source
    order."""
    found = []
    for top in AUDITED:
        for dirpath, _, files in os.walk(os.path.join(REPO, top)):
            for name in sorted(files):
                if not name.endswith(".py"):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, REPO).replace(os.sep, "/")
                tree = ast.parse(open(path, encoding="utf-8").read())
                scope = []

                class Visitor(ast.NodeVisitor):
                    def scoped(self, node):
                        scope.append(node.name)
                        self.generic_visit(node)
                        scope.pop()

                    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = scoped

                    def visit_Call(self, node):
                        func = node.func
                        called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                        mode = next((k.value.value for k in node.keywords if k.arg == "mode"
                                     and isinstance(k.value, ast.Constant)), None)
                        if mode is None and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                            mode = node.args[1].value
                        writes = (called in ("open", "GzipFile", "ZipFile") and isinstance(mode, str)
                                  and any(c in mode for c in "wax+")) or called in WRITE_CALLS \
                            or ast.unparse(func) == "shutil.copy"
                        if writes and called not in LOG_WRITERS:
                            found.append((rel, ".".join(scope) or "<module>", ast.unparse(func), node.lineno))
                        self.generic_visit(node)

                Visitor().visit(tree)
    # a call site is (file, function, call, k): the k-th call of that name in that function, written "call #k" from
    # the second on, so a new write beside an approved one of the same name is a new, unreviewed site
    seen, sites = {}, []
    for rel, fn, call, line in found:
        k = seen[rel, fn, call] = seen.get((rel, fn, call), 0) + 1
        sites.append((rel, fn, call if k == 1 else f"{call} #{k}", line))
    return sites


def test_every_write_site_is_reviewed_as_atomic():
    """A new call that writes a file fails this test until it is reviewed: atomic (add it to ATOMIC with the reason)
    or not (fix it); an entry that matches no call any more fails it too."""
    sites = write_sites()
    keys = {s[:3] for s in sites}
    unreviewed = [s for s in sites if s[:3] not in ATOMIC and s[:3] not in KNOWN_NON_ATOMIC]
    assert not unreviewed, "\n".join(f"{f}:{line} {fn}: {call}" for f, fn, call, line in unreviewed)
    stale = sorted(k for k in list(ATOMIC) + list(KNOWN_NON_ATOMIC) if k not in keys)
    assert not stale, f"audit entries that match no write call: {stale}"
    print(f"\n{len(sites)} write sites in {', '.join(AUDITED)}: "
          f"{sum(s[:3] in ATOMIC for s in sites)} atomic, "
          f"{sum(s[:3] in KNOWN_NON_ATOMIC for s in sites)} append-only logs")
