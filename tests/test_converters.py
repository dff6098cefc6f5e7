"""The weight converters end to end through the CLI (`converters.__main__.main`, in process):
(a) HF transformers folders (safetensors and pickle .bin) -> ours, logits equal; ours -> HF, transformers loads it;
(b) the TF checkpoint TensorFlow wrote (tests/fixtures/tf_electra_tiny) -> discriminator + generator, every tensor
    checked against an oracle written here, then to-hf -> transformers with equal logits; the release-zip route;
(c) PaddleNLP folders both ways; (d) corrupt, truncated, mis-shaped, unknown and pickled inputs: one clear line, exit 2,
    no traceback, no output folder.
"""
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import TF_FIXTURE, reference, write_leveldb_table  # reference: skip here, fail under CI=true

from converters import tf_checkpoint as tfc
from converters.__main__ import main

torch = reference("torch")
transformers = reference("transformers")

import paddle  # noqa: E402

from paddle_electra import ElectraDiscriminator, ElectraGenerator  # noqa: E402
from paddle_electra.weights import load_safetensors  # noqa: E402

FIXTURE = TF_FIXTURE
PREFIX = os.path.join(FIXTURE, "electra_small")
DATA = ".data-00000-of-00001"
VOCAB = os.path.join(FIXTURE, "vocab.txt")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# tiny shapes of the fixture: vocab 99, E 16; discriminator H 32 x 2 layers, generator H 8 x 2 layers
DISC = dict(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64)
GEN = dict(DISC, hidden_size=8, num_attention_heads=1, intermediate_size=32)


# ---- helpers -------------------------------------------------------------------------------------------------------
def cli(capsys, *args):
    rc = main([str(a) for a in args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def ok(capsys, *args):
    rc, out, err = cli(capsys, *args)
    assert rc == 0, err
    return err


def fails(capsys, pattern, *args, out=None):
    """The command exits 2 with exactly one `error:` line matching `pattern`, no traceback, and writes no --out."""
    rc, _, err = cli(capsys, *args)
    assert rc == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), err
    assert "Traceback" not in err
    if out is not None:
        assert not os.path.exists(out), f"{out} was written"
        assert not [p for p in os.listdir(os.path.dirname(out)) if ".tmp-" in p], "temp folder left behind"
    return errors[0]


def batch(vocab, seed=0):
    """Three rows, the last two padded; ids avoid 0 so PaddleNLP's pad-id default mask agrees too."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(3, 12))
    mask = np.ones_like(ids)
    for row, keep in ((1, 9), (2, 5)):
        ids[row, keep:], mask[row, keep:] = 0, 0
    types = np.zeros_like(ids)
    types[:, 6:] = 1
    return ids, types * mask, mask


def hf_config(shape, **extra):
    return transformers.ElectraConfig(**shape, **extra)


def randomize_torch(model, seed):
    """Random values in every tensor (biases, LayerNorm too), so a mix-up between two tensors shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05 + (1.0 if name.endswith("LayerNorm.weight") else 0.0))
    return model.eval()


def hf_forward(model, ids, types, mask):
    with torch.no_grad():
        return model(torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types))


def hf_logits(model, ids, types, mask):
    return hf_forward(model, ids, types, mask).logits.numpy()


def assert_same_tensors(path_a, path_b):
    a, b = load_safetensors(path_a), load_safetensors(path_b)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def our_logits(model_dir, role, ids, types, mask):
    model = (ElectraDiscriminator if role == "discriminator" else ElectraGenerator).from_pretrained(model_dir)
    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(ids), paddle.to_tensor(types), paddle.to_tensor(mask)).numpy()


def assert_close(got, expected, mask):
    real = mask.astype(bool)  # padded positions are garbage by construction; both sides mask the same keys
    assert got.shape == expected.shape
    scale = max(1.0, float(np.abs(expected[real]).max()))
    np.testing.assert_allclose(got[real], expected[real], rtol=0, atol=1e-5 * scale)


HF_CLASSES = {"discriminator": "ElectraForPreTraining", "generator": "ElectraForMaskedLM"}


def make_hf_dir(path, role, safetensors=True, seed=1):
    config = hf_config(DISC if role == "discriminator" else GEN)
    model = randomize_torch(getattr(transformers, HF_CLASSES[role])(config), seed)
    model.save_pretrained(path, safe_serialization=safetensors)
    shutil.copy(VOCAB, os.path.join(path, "vocab.txt"))
    return model


# ---- (a) HF round trip ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["discriminator", "generator"])
@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_hf_round_trip(tmp_path, capsys, role, fmt):
    src, ours, back = tmp_path / "hf", tmp_path / "ours", tmp_path / "back"
    model = make_hf_dir(src, role, safetensors=fmt == "safetensors")
    flags = ["--allow-pickle"] if fmt == "bin" else []
    err = ok(capsys, "from-hf", "--model", src, "--out", ours, *flags)
    assert ("pickle files from untrusted sources can run arbitrary code" in err) == (fmt == "bin")
    assert json.loads((ours / "config.json").read_text())["architectures"] == [HF_CLASSES[role]]
    ids, types, mask = batch(99)
    assert_close(our_logits(ours, role, ids, types, mask), hf_logits(model, ids, types, mask), mask)

    ok(capsys, "to-hf", "--model", ours, "--out", back)
    reloaded, info = getattr(transformers, HF_CLASSES[role]).from_pretrained(back, output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched keys
    original = model.state_dict()
    for name, value in reloaded.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), original[name].numpy(), err_msg=name)


def test_hf_backbone_and_ignored_buffers(tmp_path, capsys):
    """An ElectraModel folder (no head, names without the `electra.` prefix) converts to a backbone."""
    src = tmp_path / "hf"
    model = randomize_torch(transformers.ElectraModel(hf_config(DISC)), 3)
    model.save_pretrained(src)
    shutil.copy(VOCAB, src / "vocab.txt")
    ok(capsys, "from-hf", "--model", src, "--out", tmp_path / "ours")
    from paddle_electra import ElectraEncoder
    ours = ElectraEncoder.from_pretrained(tmp_path / "ours")
    ours.eval()
    ids, types, mask = batch(99)
    expected = hf_forward(model, ids, types, mask).last_hidden_state.numpy()
    got = ours(paddle.to_tensor(ids), paddle.to_tensor(types), paddle.to_tensor(mask))[1].numpy()
    real = mask.astype(bool)
    np.testing.assert_allclose(got[real], expected[real], rtol=0, atol=1e-5)
    ok(capsys, "to-hf", "--model", tmp_path / "ours", "--out", tmp_path / "back")
    reloaded, info = transformers.ElectraModel.from_pretrained(tmp_path / "back", output_loading_info=True)
    assert not any(info.values()), info
    np.testing.assert_allclose(hf_forward(reloaded.eval(), ids, types, mask).last_hidden_state.numpy(), expected,
                               rtol=0, atol=1e-6)


# ---- (b) the TF checkpoint written by TensorFlow -------------------------------------------------------------------
def fixture_tensors():
    with np.load(os.path.join(FIXTURE, "expected.npz"), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def oracle(tf, scope, head):
    """Our expected state, written out by hand from electra-reference.md §4.2 (Paddle Linear = TF kernel)."""
    out, used = {}, set()

    def take(name):
        used.add(name)
        return tf[name]
    for t in ("word", "position", "token_type"):
        out[f"electra.embeddings.{t}_embeddings.weight"] = take(f"electra/embeddings/{t}_embeddings")
    out["electra.embeddings.layer_norm.weight"] = take("electra/embeddings/LayerNorm/gamma")
    out["electra.embeddings.layer_norm.bias"] = take("electra/embeddings/LayerNorm/beta")
    out["electra.embeddings_project.weight"] = take(f"{scope}/embeddings_project/kernel")
    out["electra.embeddings_project.bias"] = take(f"{scope}/embeddings_project/bias")
    for k in range(2):
        tf_l, ours = f"{scope}/encoder/layer_{k}", f"electra.encoder.{k}"
        qkv = [f"{tf_l}/attention/self/{p}" for p in ("query", "key", "value")]
        out[f"{ours}.attention.qkv.weight"] = np.concatenate([take(f"{n}/kernel") for n in qkv], axis=1)
        out[f"{ours}.attention.qkv.bias"] = np.concatenate([take(f"{n}/bias") for n in qkv])
        for tf_name, name in (("attention/output/dense", "attention.output"), ("intermediate/dense", "intermediate"),
                              ("output/dense", "output")):
            out[f"{ours}.{name}.weight"] = take(f"{tf_l}/{tf_name}/kernel")
            out[f"{ours}.{name}.bias"] = take(f"{tf_l}/{tf_name}/bias")
        for tf_name, name in (("attention/output/LayerNorm", "attention.layer_norm"),
                              ("output/LayerNorm", "layer_norm")):
            out[f"{ours}.{name}.weight"] = take(f"{tf_l}/{tf_name}/gamma")
            out[f"{ours}.{name}.bias"] = take(f"{tf_l}/{tf_name}/beta")
    if head == "discriminator":
        for tf_name, name in (("dense", "dense"), ("dense_1", "dense_prediction")):
            out[f"discriminator_predictions.{name}.weight"] = take(f"discriminator_predictions/{tf_name}/kernel")
            out[f"discriminator_predictions.{name}.bias"] = take(f"discriminator_predictions/{tf_name}/bias")
    else:
        out["generator_predictions.dense.weight"] = take("generator_predictions/dense/kernel")
        out["generator_predictions.dense.bias"] = take("generator_predictions/dense/bias")
        out["generator_predictions.layer_norm.weight"] = take("generator_predictions/LayerNorm/gamma")
        out["generator_predictions.layer_norm.bias"] = take("generator_predictions/LayerNorm/beta")
        out["generator_predictions.output_bias"] = take("generator_predictions/output_bias")
    return out, used


@pytest.fixture(scope="module")
def tf_converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("tf") / "converted"
    assert main(["from-tf", "--checkpoint", FIXTURE, "--out", str(out)]) == 0
    return out


def test_tf_every_tensor_matches_the_fixture(tf_converted):
    tf = fixture_tensors()
    used_all = set()
    for role, scope in (("discriminator", "electra"), ("generator", "generator")):
        got = load_safetensors(tf_converted / role / "model.safetensors")
        expected, used = oracle(tf, scope, role)
        used_all |= used
        assert sorted(got) == sorted(expected), role
        for name, value in expected.items():
            np.testing.assert_array_equal(got[name], value, err_msg=f"{role}: {name}")
        config = json.loads((tf_converted / role / "config.json").read_text())
        source = json.loads(open(os.path.join(FIXTURE, f"{role}.json")).read())
        assert config.pop("architectures") == [HF_CLASSES[role]]
        source.pop("architectures", None)
        assert config == source
        assert (tf_converted / role / "vocab.txt").read_bytes() == open(VOCAB, "rb").read()
    skipped = {n for n in tf if n.endswith(("/adam_m", "/adam_v")) or n == "global_step"}
    assert used_all | skipped == set(tf)  # every model variable went somewhere
    disc = load_safetensors(tf_converted / "discriminator" / "model.safetensors")
    gen = load_safetensors(tf_converted / "generator" / "model.safetensors")
    for name in disc:
        if name.startswith("electra.embeddings."):  # the shared tables, identical in both
            np.testing.assert_array_equal(disc[name], gen[name], err_msg=name)


@pytest.mark.parametrize("role", ["discriminator", "generator"])
def test_tf_to_hf_loads_in_transformers_with_equal_logits(tf_converted, tmp_path, capsys, role):
    ok(capsys, "to-hf", "--model", tf_converted / role, "--out", tmp_path / "hf")
    model, info = getattr(transformers, HF_CLASSES[role]).from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not any(info.values()), info
    ids, types, mask = batch(99, seed=4)
    expected = hf_logits(model.eval(), ids, types, mask)
    assert_close(our_logits(tf_converted / role, role, ids, types, mask), expected, mask)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tokenizer.convert_tokens_to_ids("[MASK]") == 8


def copy_checkpoint(dest, configs=True):
    os.makedirs(dest, exist_ok=True)
    for name in ("electra_small.index", "electra_small" + DATA, "checkpoint", "vocab.txt") + (
            ("discriminator.json", "generator.json") if configs else ()):
        shutil.copy(os.path.join(FIXTURE, name), os.path.join(dest, name))
    return str(dest)


def test_tf_configs_from_flags_prefix_and_preset(tmp_path, capsys, tf_converted):
    ckpt = copy_checkpoint(tmp_path / "ckpt", configs=False)
    out = tmp_path / "a"
    fails(capsys, r"discriminator\.json: not found, and no --size given", "from-tf", "--checkpoint", ckpt,
          "--out", out, out=out)
    # preset shapes do not fit the tiny checkpoint: the message names the variable and both shapes
    fails(capsys, r"'electra/embeddings/word_embeddings' has shape \[99, 16\], the small discriminator preset "
          r"\(--size small\) implies \[21128, 128\]", "from-tf", "--checkpoint", ckpt, "--size", "small",
          "--vocab", VOCAB, "--out", out, out=out)
    ok(capsys, "from-tf", "--checkpoint", os.path.join(ckpt, "electra_small"), "--out", out,
       "--discriminator-config", os.path.join(FIXTURE, "discriminator.json"),
       "--generator-config", os.path.join(FIXTURE, "generator.json"))
    for role in ("discriminator", "generator"):
        assert_same_tensors(out / role / "model.safetensors", tf_converted / role / "model.safetensors")


def test_wrong_size_names_the_preset_that_fits():
    from converters.tf_official import matching_presets, variable_table
    from paddle_electra import preset
    for size in ("small", "small-ex", "base"):
        table = variable_table(preset(size, "discriminator"), "discriminator", "discriminator", "electra")
        assert matching_presets({n: ("float32", shape) for n, (_, shape, _) in table.items()}) == [size]


def test_from_release_zip(tmp_path, capsys, tf_converted):
    archive = tmp_path / "chinese_electra_tiny.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("chinese_electra_tiny/", "")
        for name in ("electra_small.index", "electra_small" + DATA, "checkpoint", "vocab.txt",
                     "discriminator.json", "generator.json"):
            z.write(os.path.join(FIXTURE, name), f"chinese_electra_tiny/{name}")
    ok(capsys, "from-release", "--zip", archive, "--out", tmp_path / "out")
    for role in ("discriminator", "generator"):
        for name in ("config.json", "vocab.txt"):
            assert (tmp_path / "out" / role / name).read_bytes() == (tf_converted / role / name).read_bytes()
        # not the file bytes: safetensors writes its metadata keys in hash-map order
        assert_same_tensors(tmp_path / "out" / role / "model.safetensors", tf_converted / role / "model.safetensors")
    assert sorted(os.listdir(tmp_path)) == ["chinese_electra_tiny.zip", "out"]  # the unzip folder is gone


@pytest.mark.parametrize("member,pattern", [
    ("../evil.txt", "points outside the extraction folder"),
    ("/tmp/evil.txt", "points outside the extraction folder"),
    ("link", "is a symbolic link"),
])
def test_release_zip_refuses_unsafe_members(tmp_path, capsys, member, pattern):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(os.path.join(FIXTURE, "vocab.txt"), "ok/vocab.txt")
        info = zipfile.ZipInfo(member)
        if member == "link":
            info.external_attr = (0o120777 << 16)  # S_IFLNK: a symlink member, target in the data
        z.writestr(info, "/etc/passwd" if member == "link" else "boo")
    fails(capsys, pattern, "from-release", "--zip", archive, "--out", tmp_path / "out", out=tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


# ---- (c) PaddleNLP --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nlp():
    """paddlenlp.transformers, imported once, here: slow to import, and its logger keeps the stderr of the moment
    (imported inside a test, that is capsys' stream, closed when the test ends)."""
    from paddlenlp import transformers
    return transformers


def paddlenlp_model(nlp, cls_name, seed):
    model = getattr(nlp, cls_name)(nlp.ElectraConfig(**DISC))
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        base = 1.0 if ("norm" in name and name.endswith("weight")) else 0.0
        p.set_value((rng.standard_normal(p.shape) * 0.05 + base).astype("float32"))
    model.eval()
    return model


def nlp_logits(model, ids, types, mask):
    with paddle.no_grad():
        return model(paddle.to_tensor(ids), paddle.to_tensor(types), attention_mask=paddle.to_tensor(mask)).numpy()


@pytest.mark.parametrize("role,cls_name", [("discriminator", "ElectraDiscriminator"),
                                           ("generator", "ElectraGenerator")])
def test_paddlenlp_round_trip(nlp, tmp_path, capsys, role, cls_name):
    src, ours, back = tmp_path / "nlp", tmp_path / "ours", tmp_path / "back"
    model = paddlenlp_model(nlp, cls_name, seed=5)
    model.save_pretrained(str(src))
    shutil.copy(VOCAB, src / "vocab.txt")
    out = tmp_path / "refused"
    fails(capsys, r"model_state\.pdparams: a \.pdparams file is a pickle.*--allow-pickle",
          "from-paddlenlp", "--model", src, "--out", out, out=out)
    err = ok(capsys, "from-paddlenlp", "--model", src, "--out", ours, "--allow-pickle")
    assert "pickle files from untrusted sources" in err
    ids, types, mask = batch(99, seed=6)
    expected = nlp_logits(model, ids, types, mask)
    assert_close(our_logits(ours, role, ids, types, mask), expected, mask)

    ok(capsys, "to-paddlenlp", "--model", ours, "--out", back)
    reloaded = getattr(nlp, cls_name).from_pretrained(str(back))
    reloaded.eval()
    saved = paddle.load(str(back / "model_state.pdparams"), return_numpy=True)
    assert sorted(saved) == sorted(reloaded.state_dict())  # nothing PaddleNLP would merely warn about
    assert_close(nlp_logits(reloaded, ids, types, mask), expected, mask)


def test_paddlenlp_total_pretraining_gives_both_models(nlp, tmp_path, capsys):
    model = paddlenlp_model(nlp, "ElectraForTotalPretraining", seed=7)
    model.save_pretrained(str(tmp_path / "nlp"))
    shutil.copy(VOCAB, tmp_path / "nlp" / "vocab.txt")
    ok(capsys, "from-paddlenlp", "--model", tmp_path / "nlp", "--out", tmp_path / "ours", "--allow-pickle")
    ids, types, mask = batch(99, seed=8)
    for role in ("discriminator", "generator"):
        expected = nlp_logits(getattr(model, role), ids, types, mask)
        assert_close(our_logits(tmp_path / "ours" / role, role, ids, types, mask), expected, mask)


# ---- (d) bad inputs -------------------------------------------------------------------------------------------------
def test_flipped_byte_in_our_safetensors_is_caught_by_the_checksum(tmp_path, capsys, tf_converted):
    model = tmp_path / "model"
    shutil.copytree(tf_converted / "discriminator", model)
    data = bytearray((model / "model.safetensors").read_bytes())
    data[-100] ^= 0x01  # a low mantissa bit: a valid float, invisible to safetensors' own checks
    (model / "model.safetensors").write_bytes(bytes(data))
    fails(capsys, r"model\.safetensors: checksum mismatch", "to-hf", "--model", model, "--out", tmp_path / "o",
          out=tmp_path / "o")


def test_corrupt_and_truncated_hf_safetensors(tmp_path, capsys):
    src = tmp_path / "hf"
    make_hf_dir(src, "discriminator")
    good = (src / "model.safetensors").read_bytes()
    (src / "model.safetensors").write_bytes(good[:len(good) // 2])
    fails(capsys, r"model\.safetensors: not a valid safetensors file", "from-hf", "--model", src,
          "--out", tmp_path / "o", out=tmp_path / "o")
    broken = bytearray(good)
    broken[10] = ord("!")  # inside the JSON header
    (src / "model.safetensors").write_bytes(bytes(broken))
    fails(capsys, r"model\.safetensors: not a valid safetensors file", "from-hf", "--model", src,
          "--out", tmp_path / "o", out=tmp_path / "o")


def test_truncated_pickle_files_with_the_flag(tmp_path, capsys, nlp):
    src = tmp_path / "hf"
    make_hf_dir(src, "discriminator", safetensors=False)
    data = (src / "pytorch_model.bin").read_bytes()
    (src / "pytorch_model.bin").write_bytes(data[:len(data) // 2])
    fails(capsys, r"pytorch_model\.bin: not a readable torch weights file", "from-hf", "--model", src,
          "--out", tmp_path / "o", "--allow-pickle", out=tmp_path / "o")
    paddlenlp_model(nlp, "ElectraDiscriminator", seed=2).save_pretrained(str(tmp_path / "nlp"))
    shutil.copy(VOCAB, tmp_path / "nlp" / "vocab.txt")
    data = (tmp_path / "nlp" / "model_state.pdparams").read_bytes()
    (tmp_path / "nlp" / "model_state.pdparams").write_bytes(data[:len(data) // 2])
    fails(capsys, r"model_state\.pdparams: not a readable \.pdparams file", "from-paddlenlp", "--model",
          tmp_path / "nlp", "--out", tmp_path / "o", "--allow-pickle", out=tmp_path / "o")


def test_truncated_and_flipped_tf_data(tmp_path, capsys):
    ckpt = copy_checkpoint(tmp_path / "ckpt")
    data_file = os.path.join(ckpt, "electra_small" + DATA)
    good = open(data_file, "rb").read()
    open(data_file, "wb").write(good[:len(good) - 1000])
    fails(capsys, r"truncated checkpoint", "from-tf", "--checkpoint", ckpt, "--out", tmp_path / "o", out=tmp_path / "o")
    flipped = bytearray(good)
    flipped[4000] ^= 0x10
    open(data_file, "wb").write(bytes(flipped))
    fails(capsys, r"variable '.*': crc32c mismatch", "from-tf", "--checkpoint", ckpt, "--out", tmp_path / "o",
          out=tmp_path / "o")


def test_hf_config_that_lies_about_the_hidden_size(tmp_path, capsys):
    src = tmp_path / "hf"
    make_hf_dir(src, "discriminator")
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps(dict(config, hidden_size=64)))
    line = fails(capsys, r"config\.json does not describe the weights in .*model\.safetensors: "
                 r"'electra\.embeddings_project\.weight' has shape \[32, 16\], config implies \[64, 16\]",
                 "from-hf", "--model", src, "--out", tmp_path / "o", out=tmp_path / "o")
    assert "hidden_size=32" in line


def test_generator_with_the_discriminator_config_is_explained_and_config_flag_fixes_it(tmp_path, capsys):
    """hfl/chinese-legal-electra-small-generator ships the discriminator's config.json (PaddleNLP PR #1086)."""
    src = tmp_path / "hf"
    model = make_hf_dir(src, "generator")
    right = json.loads((src / "config.json").read_text())
    wrong = dict(right, **{k: DISC[k] for k in ("hidden_size", "intermediate_size", "num_attention_heads")})
    (src / "config.json").write_text(json.dumps(wrong))
    fails(capsys, r"chinese-legal-electra-small-generator.*--config|--config.*chinese-legal-electra-small-generator",
          "from-hf", "--model", src, "--out", tmp_path / "o", out=tmp_path / "o")
    (tmp_path / "generator.json").write_text(json.dumps(right))
    ok(capsys, "from-hf", "--model", src, "--config", tmp_path / "generator.json", "--out", tmp_path / "o")
    ids, types, mask = batch(99)
    assert_close(our_logits(tmp_path / "o", "generator", ids, types, mask), hf_logits(model, ids, types, mask), mask)


def test_tf_config_that_lies_about_the_hidden_size(tmp_path, capsys):
    ckpt = copy_checkpoint(tmp_path / "ckpt")
    config = json.load(open(os.path.join(ckpt, "discriminator.json")))
    json.dump(dict(config, hidden_size=64), open(os.path.join(ckpt, "discriminator.json"), "w"))
    fails(capsys, r"'electra/embeddings_project/kernel' has shape \[16, 32\], .*discriminator\.json implies \[16, 64\]",
          "from-tf", "--checkpoint", ckpt, "--out", tmp_path / "o", out=tmp_path / "o")


def add_alias_variables(prefix, names, like=b"electra/encoder/layer_0/attention/self/query/bias", drop=()):
    """Extra index entries named `names`, pointing at an existing tensor's bytes (a valid checkpoint); entries whose
    name starts with one of `drop` are removed."""
    items = list(tfc._read_table(prefix + ".index"))
    value = dict(items)[like]
    items = [(k, v) for k, v in items if not (k and k.decode().startswith(tuple(drop)))]
    write_leveldb_table(prefix + ".index", sorted(items + [(n.encode(), value) for n in names]))


def test_unknown_tf_variable(tmp_path, capsys):
    ckpt = copy_checkpoint(tmp_path / "ckpt")
    add_alias_variables(os.path.join(ckpt, "electra_small"), ["electra/encoder/layer_0/attention/self/mystery/bias"])
    assert "electra/encoder/layer_0/attention/self/mystery/bias" in tfc.list_variables(ckpt)
    fails(capsys, r"electra_small\.index: unknown variable\(s\).*'electra/encoder/layer_0/attention/self/mystery/bias'",
          "from-tf", "--checkpoint", ckpt, "--out", tmp_path / "o", out=tmp_path / "o")


def test_fine_tuned_checkpoint_task_specific(tmp_path, capsys):
    ckpt = copy_checkpoint(tmp_path / "ckpt")
    add_alias_variables(os.path.join(ckpt, "electra_small"), ["task_specific/chnsenticorp/dense/bias"])
    fails(capsys, r"fine-tuned checkpoint .*'task_specific/chnsenticorp/dense/bias'.*--skip-task-specific",
          "from-tf", "--checkpoint", ckpt, "--out", tmp_path / "o", out=tmp_path / "o")
    ok(capsys, "from-tf", "--checkpoint", ckpt, "--out", tmp_path / "o", "--skip-task-specific")
    assert sorted(os.listdir(tmp_path / "o")) == ["discriminator", "generator"]


def test_fine_tuned_checkpoint_without_generator_gives_the_backbone(tmp_path, capsys):
    """What the official fine-tuning saves: electra/* and task_specific/* only (no generator, no pretraining heads)."""
    ckpt = copy_checkpoint(tmp_path / "ckpt")
    os.remove(os.path.join(ckpt, "generator.json"))  # not needed when the checkpoint has no generator
    add_alias_variables(os.path.join(ckpt, "electra_small"), ["task_specific/chnsenticorp/dense/bias"],
                        drop=("generator", "discriminator_predictions"))
    err = ok(capsys, "from-tf", "--checkpoint", ckpt, "--out", tmp_path / "o", "--skip-task-specific")
    assert "no generator" in err and "backbone only" in err
    assert os.listdir(tmp_path / "o") == ["discriminator"]
    config = json.loads((tmp_path / "o" / "discriminator" / "config.json").read_text())
    assert config["architectures"] == ["ElectraModel"]
    from paddle_electra import ElectraForSequenceClassification
    model = ElectraForSequenceClassification.from_pretrained(tmp_path / "o" / "discriminator", num_labels=2)
    np.testing.assert_array_equal(model.electra.embeddings.word_embeddings.weight.numpy(),
                                  fixture_tensors()["electra/embeddings/word_embeddings"])


class _Malicious:
    """Unpickling this creates a marker file: the attack a pickle weights file can carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_refused_without_the_flag_and_malicious_ones_never_run(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    src = tmp_path / "hf"
    make_hf_dir(src, "discriminator")
    os.remove(src / "model.safetensors")
    with open(src / "pytorch_model.bin", "wb") as f:
        pickle.dump({"electra.embeddings.word_embeddings.weight": _Malicious(str(marker))}, f)
    fails(capsys, r"pytorch_model\.bin: a torch \.bin file is a pickle.*--allow-pickle",
          "from-hf", "--model", src, "--out", tmp_path / "o", out=tmp_path / "o")
    assert not marker.exists()
    # even with the flag, torch's weights_only loader refuses to call `open`
    fails(capsys, r"pytorch_model\.bin: refused by torch's weights_only loader", "from-hf", "--model", src,
          "--out", tmp_path / "o", "--allow-pickle", out=tmp_path / "o")
    assert not marker.exists()
    # the same object as a PaddleNLP .pdparams: refused before paddle.load (which would run it)
    nlp = tmp_path / "nlp"
    nlp.mkdir()
    (nlp / "config.json").write_text(json.dumps(dict(DISC, architectures=["ElectraDiscriminator"])))
    shutil.copy(VOCAB, nlp / "vocab.txt")
    with open(nlp / "model_state.pdparams", "wb") as f:
        pickle.dump({"x": _Malicious(str(marker))}, f)
    fails(capsys, r"model_state\.pdparams: a \.pdparams file is a pickle", "from-paddlenlp", "--model", nlp,
          "--out", tmp_path / "o", out=tmp_path / "o")
    assert not marker.exists()


def test_out_folder_is_never_clobbered_without_force(tmp_path, capsys, tf_converted):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    fails(capsys, r"--out exists and is not empty; pass --force", "to-hf", "--model", tf_converted / "generator",
          "--out", out)
    assert (out / "keep.txt").read_text() == "mine"
    ok(capsys, "to-hf", "--model", tf_converted / "generator", "--out", out, "--force")
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
    assert [p for p in os.listdir(tmp_path) if p != "out"] == []
    fails(capsys, r"--out is the input .* or holds it", "to-paddlenlp", "--model", out, "--out", tmp_path, "--force")
    assert (out / "model.safetensors").exists()


def test_download_is_thin_and_refuses_pickle_before_downloading(tmp_path, capsys, monkeypatch):
    import huggingface_hub
    src = tmp_path / "snapshot"
    model = make_hf_dir(src, "discriminator")
    calls = []
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files",
                        lambda self, repo, revision=None: sorted(os.listdir(src)))
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda **kw: calls.append(kw) or str(src))
    ok(capsys, "download", "--repo", "hfl/chinese-electra-180g-small-discriminator", "--out", tmp_path / "o")
    assert calls[0]["repo_id"] == "hfl/chinese-electra-180g-small-discriminator"
    assert "*.safetensors" in calls[0]["allow_patterns"] and not any(".bin" in p for p in calls[0]["allow_patterns"])
    ids, types, mask = batch(99)
    expected = hf_logits(model, ids, types, mask)
    assert_close(our_logits(tmp_path / "o", "discriminator", ids, types, mask), expected, mask)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files",
                        lambda self, repo, revision=None: ["config.json", "pytorch_model.bin", "vocab.txt"])
    fails(capsys, r"hfl/x: has only pytorch_model\.bin, a pickle file", "download", "--repo", "hfl/x",
          "--out", tmp_path / "p", out=tmp_path / "p")
    assert len(calls) == 1
    fails(capsys, r"--repo 'nope': expected OWNER/NAME", "download", "--repo", "nope", "--out", tmp_path / "p")


def test_cli_errors_are_one_line_with_status_2_in_a_real_process(tmp_path):
    """No traceback and no usage block: exactly one stderr line."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    for args in (["from-hf", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
                 ["from-tf", "--checkpoint", FIXTURE, "--out", str(tmp_path / "o"), "--size", "huge"]):
        result = subprocess.run([sys.executable, "-m", "converters", *args], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
