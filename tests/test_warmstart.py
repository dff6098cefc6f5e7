"""Continued pretraining from released weights (`pretrain/run.py --init-from DIR`): the export after 0 steps is the
input bit for bit, the first step's losses are a forward pass of the input weights, a lone discriminator starts a
fresh generator and says so, and a wrong vocab, a missing generator, a contradicting shape flag, a shape mismatch
and embeddings that cannot be shared each stop the run before training."""
import json
import shutil

import numpy as np
import pytest

import paddle_electra  # noqa: F401  (environment before paddle)
import paddle

from paddle_electra.errors import ConfigError, WeightsError
from paddle_electra.fileio import update_manifest
from paddle_electra.weights import load_safetensors, save_safetensors
from pretrain import corpus
from pretrain.config import PretrainConfig
from pretrain.data import BuildOptions, build_dataset

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "embedding_size": 16}


def config(data_dir, out_dir, **overrides):
    values = dict(data=str(data_dir), output_dir=str(out_dir), size="tiny", discriminator=TINY,
                  train_batch_size=8, warmup_steps=2, num_train_steps=50, learning_rate=2e-3, max_steps=3,
                  save_every=0, progress=False, visualdl=False, export=True)
    values.update(overrides)
    return PretrainConfig.load(overrides=values).resolve()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A dataset and the export of a 3-step run on it (what pretrain/export.py writes, as converters do:
    discriminator/ and generator/ model directories with config.json, vocab.txt and model.safetensors)."""
    from pretrain.train import train
    root = tmp_path_factory.mktemp("warm")
    corpus.write_corpus(str(root), heldout_fraction=0.0)
    small = root / "small.txt"
    small.write_text("\n\n".join((root / "train.txt").read_text(encoding="utf-8").split("\n\n")[:200]) + "\n",
                     encoding="utf-8")
    build_dataset([str(small)], root / "data", vocab_size=2000, options=BuildOptions(max_seq_length=32),
                  num_workers=0, progress=False)
    train(config(root / "data", root / "run"))
    return {"data": root / "data", "dir": root / "run" / "export", "root": root}


def test_zero_steps_exports_the_input_unchanged_with_a_full_report(source, tmp_path):
    from pretrain.train import train
    out = tmp_path / "warm"
    # TINY is the input's shape, so repeating it is no contradiction; --size only picks optimisation defaults
    summary = train(config(source["data"], out, init_from=str(source["dir"]), max_steps=0))
    assert summary["steps"] == 0
    for role in ("discriminator", "generator"):
        before = load_safetensors(source["dir"] / role / "model.safetensors")
        after = load_safetensors(out / "export" / role / "model.safetensors")
        assert sorted(before) == sorted(after)
        for name in before:
            assert before[name].dtype == after[name].dtype and np.array_equal(before[name], after[name]), name
    report = json.loads((out / "init_report.json").read_text())
    disc_file = load_safetensors(source["dir"] / "discriminator" / "model.safetensors")
    assert sorted(report["discriminator"]["loaded"]) == sorted(disc_file)
    assert report["discriminator"]["loaded"]["electra.embeddings.word_embeddings.weight"] == \
        list(disc_file["electra.embeddings.word_embeddings.weight"].shape)
    assert report["discriminator"]["initialized"] == {} and report["generator"]["initialized"] == {}
    assert "electra.embeddings.word_embeddings.weight" in report["generator"]["shared_with_discriminator"]


def test_first_step_losses_are_a_forward_pass_of_the_input_weights(source, tmp_path):
    from paddle_electra.pretraining import ElectraForPretraining
    from pretrain import warmstart
    from pretrain.dataset import EpochSampler, PretrainingDataset
    from pretrain.rng import draw_masks, draw_sample_uniforms
    from pretrain.train import train
    cfg = config(source["data"], tmp_path / "warm", init_from=str(source["dir"]), max_steps=1, dropout=0.0,
                 export=False)
    train(cfg)
    logged = json.loads((tmp_path / "warm" / "losses.jsonl").read_text().splitlines()[0])
    # the same batch, masks and generator draws as step 1 of the run (one process, no accumulation)
    data = PretrainingDataset(cfg.data)
    tokenizer = data.tokenizer()
    positions = np.arange(cfg.train_batch_size)
    tensors = {k: paddle.to_tensor(v) for k, v in
               data.batch(EpochSampler(len(data), cfg.seed).indices(positions)).items()}
    source_dirs = warmstart.find_source(cfg.init_from)
    disc_cfg, gen_cfg = warmstart.model_configs(cfg, source_dirs, data.vocab_size)
    model = ElectraForPretraining(disc_cfg, gen_cfg, tokenizer.special_token_ids, tokenizer.mask_token_id)
    warmstart.load_initial_weights(model, source_dirs)
    masked = draw_masks(tensors["input_ids"], tensors["attention_mask"], positions, cfg.seed, model.special_ids,
                        model.mask_token_id, cfg.mask_prob, cfg.per_sample_rng, 0, tag="0/0")
    uniforms = draw_sample_uniforms(positions, masked.positions.shape[1], cfg.seed, cfg.per_sample_rng, 0, tag="0/0")
    with paddle.no_grad():
        out = model(tensors["input_ids"], tensors["token_type_ids"], tensors["attention_mask"], masked=masked,
                    sample_uniforms=uniforms)
    assert logged["gen_loss"] == pytest.approx(float(out.gen_loss), rel=1e-5)
    assert logged["disc_loss"] == pytest.approx(float(out.disc_loss), rel=1e-5)
    # the control: the same step from the run's own random initialisation has other losses
    train(config(source["data"], tmp_path / "cold", max_steps=1, dropout=0.0, export=False))
    cold = json.loads((tmp_path / "cold" / "losses.jsonl").read_text().splitlines()[0])
    assert abs(cold["gen_loss"] - logged["gen_loss"]) > 1e-3


def test_a_lone_discriminator_starts_a_fresh_generator_loudly(source, tmp_path, capsys):
    from pretrain.train import train
    out = tmp_path / "warm"
    train(config(source["data"], out, init_from=str(source["dir"] / "discriminator"), max_steps=0,
                 generator_hidden_size=0.5))
    assert "WARNING: no generator in --init-from" in capsys.readouterr().out
    report = json.loads((out / "init_report.json").read_text())
    assert report["generator"]["dir"] is None and report["generator"]["loaded"] == {}
    assert all("no generator" in v["why"] for v in report["generator"]["initialized"].values())
    assert json.loads((out / "export" / "generator" / "config.json").read_text())["hidden_size"] == 16
    before = load_safetensors(source["dir"] / "discriminator" / "model.safetensors")
    after = load_safetensors(out / "export" / "discriminator" / "model.safetensors")
    assert all(np.array_equal(before[n], after[n]) for n in before)


def test_bad_starting_points_fail_before_training(source, tmp_path):
    from pretrain.train import train
    # the dataset's vocab is not the model's: the first differing line is named
    lines = (source["dir"] / "discriminator" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    lines[10], lines[11] = lines[11], lines[10]  # the same tokens, two ids swapped: a silent disaster if allowed
    (tmp_path / "swapped.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    other = tmp_path / "other-data"
    build_dataset([str(source["root"] / "small.txt")], other, vocab=str(tmp_path / "swapped.txt"),
                  options=BuildOptions(max_seq_length=32), num_workers=0, progress=False)
    with pytest.raises(ConfigError, match=r"vocab.txt line 11 is .* but .*vocab.txt line 11 is .*--vocab"):
        train(config(other, tmp_path / "a", init_from=str(source["dir"])))
    # discriminator/ without generator/
    half = tmp_path / "half"
    shutil.copytree(source["dir"], half)
    shutil.rmtree(half / "generator")
    with pytest.raises(ConfigError, match="generator is missing"):
        config(source["data"], tmp_path / "b", init_from=str(half)).check_paths()
    # a shape flag that contradicts the model's config
    with pytest.raises(ConfigError, match=r"--discriminator hidden_size=64 contradicts .*hidden_size=32"):
        train(config(source["data"], tmp_path / "c", init_from=str(source["dir"]),
                     discriminator=dict(TINY, hidden_size=64, intermediate_size=128)))
    # a tensor of the wrong shape in the file
    bad = tmp_path / "bad"
    shutil.copytree(source["dir"], bad)
    tensors = load_safetensors(bad / "discriminator" / "model.safetensors")
    name = "electra.encoder.0.output.weight" if "electra.encoder.0.output.weight" in tensors else \
        next(n for n, t in tensors.items() if t.ndim == 2 and "embeddings" not in n)
    tensors[name] = np.zeros((tensors[name].shape[0] + 1, tensors[name].shape[1]), np.float32)
    save_safetensors(tensors, str(bad / "discriminator" / "model.safetensors"))
    update_manifest(str(bad / "discriminator"), ["model.safetensors"])
    with pytest.raises(WeightsError, match=rf"{name}.*file shape"):
        train(config(source["data"], tmp_path / "d", init_from=str(bad)))
    assert not (tmp_path / "d" / "losses.jsonl").exists() or not (tmp_path / "d" / "losses.jsonl").read_text()
    # generator embeddings that differ from the discriminator's cannot both be kept
    split = tmp_path / "split"
    shutil.copytree(source["dir"], split)
    tensors = load_safetensors(split / "generator" / "model.safetensors")
    tensors["electra.embeddings.word_embeddings.weight"] = tensors["electra.embeddings.word_embeddings.weight"] + 1.0
    save_safetensors(tensors, str(split / "generator" / "model.safetensors"))
    update_manifest(str(split / "generator"), ["model.safetensors"])
    with pytest.raises(WeightsError, match="differs from the discriminator's"):
        train(config(source["data"], tmp_path / "e", init_from=str(split)))
    # an edited config.json is caught by the model directory's manifest
    edited = tmp_path / "edited"
    shutil.copytree(source["dir"], edited)
    path = edited / "discriminator" / "config.json"
    path.write_text(json.dumps(dict(json.loads(path.read_text()), hidden_size=48)))
    with pytest.raises(WeightsError, match="checksum mismatch with manifest.json"):
        train(config(source["data"], tmp_path / "f", init_from=str(edited)))


def test_a_converted_tf_checkpoint_warm_starts_a_run(tmp_path):
    """The official checkpoint format end to end: `converters from-tf` on the TF-saved fixture (official variable
    names, Adam slots, global_step), a dataset built with its vocab.txt, then a warm start: after 0 steps the export
    is the converted weights bit for bit; after 2 steps it has trained."""
    from conftest import TF_FIXTURE as fixture
    from converters.__main__ import main as convert
    from pretrain.train import train
    converted = tmp_path / "converted"
    assert convert(["from-tf", "--checkpoint", fixture, "--out", str(converted)]) == 0
    vocab = converted / "discriminator" / "vocab.txt"
    characters = [t for t in vocab.read_text(encoding="utf-8").splitlines() if len(t) == 1]
    rng = np.random.default_rng(0)
    text = "\n\n".join("\n".join("".join(rng.choice(characters, size=int(rng.integers(5, 20)))) + "。"
                                 for _ in range(4)) for _ in range(60))
    (tmp_path / "text.txt").write_text(text + "\n", encoding="utf-8")
    build_dataset([str(tmp_path / "text.txt")], tmp_path / "data", vocab=str(vocab),
                  options=BuildOptions(max_seq_length=32), num_workers=0, progress=False)
    shape = json.loads((converted / "discriminator" / "config.json").read_text())
    overrides = dict(discriminator={}, init_from=str(converted))
    summary = train(config(tmp_path / "data", tmp_path / "zero", max_steps=0, **overrides))
    assert summary["steps"] == 0
    for role in ("discriminator", "generator"):
        before = load_safetensors(converted / role / "model.safetensors")
        after = load_safetensors(tmp_path / "zero" / "export" / role / "model.safetensors")
        assert sorted(before) == sorted(after)
        assert all(np.array_equal(before[k], after[k]) for k in before), role
    report = json.loads((tmp_path / "zero" / "init_report.json").read_text())
    assert str(converted) in json.dumps(report)
    summary = train(config(tmp_path / "data", tmp_path / "two", max_steps=2, **overrides))
    assert summary["steps"] == 2 and np.isfinite(summary["last"]["loss"])
    after = load_safetensors(tmp_path / "two" / "export" / "discriminator" / "model.safetensors")
    before = load_safetensors(converted / "discriminator" / "model.safetensors")
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    exported = json.loads((tmp_path / "two" / "export" / "discriminator" / "config.json").read_text())
    assert (exported["hidden_size"], exported["embedding_size"]) == (shape["hidden_size"], shape["embedding_size"])


def test_resume_of_a_warm_started_run_continues_exactly(source, tmp_path):
    """Stopped after 2 of 4 steps and resumed: the same per-step losses as the uninterrupted warm start (the
    checkpoint, not the init folder, is where the resumed run's weights come from)."""
    from pretrain.train import train
    common = dict(init_from=str(source["dir"]), dropout=0.0, export=False, save_every=2)
    train(config(source["data"], tmp_path / "whole", max_steps=4, **common))
    train(config(source["data"], tmp_path / "split", max_steps=2, **common))
    train(config(source["data"], tmp_path / "split", max_steps=4, resume="latest", **common))

    def losses(run):
        return [(r["step"], r["gen_loss"], r["disc_loss"])
                for r in map(json.loads, (tmp_path / run / "losses.jsonl").read_text().splitlines())]

    whole, split = losses("whole"), losses("split")
    assert [s for s, _, _ in split] == [1, 2, 3, 4]
    assert [r[1:] for r in split] == [r[1:] for r in whole]  # bit for bit, as for any resumed run
