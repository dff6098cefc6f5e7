"""PaddleHub modules: generated shims, packaging, offline install, every task's predict / embedding / training, and
the archive and checkpoint safety checks. A tiny model (preset 'tiny', a hand-built vocab) stands in for the weights.

In-process tests use the conftest's temp HUB_HOME (paddlehub reads it once per process); the `hub` CLI tests run
subprocesses with their own temp HUB_HOME. A socket guard records every non-loopback connection or DNS lookup and
the tests assert there were none (hub calls home from background threads, which swallow errors).
"""
import ast
import hashlib
import ipaddress
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile

import numpy as np
import pytest

from paddle_electra import preset
from paddle_electra.errors import ConfigError, DataError, ElectraError, WeightsError
from paddle_electra.hub.home import (OFFLINE_SERVER, ArchiveError, check_archive, hub_server_setting,
                                   prepare_hub_home, safe_extract, verify_manifest, write_offline_config)
from paddle_electra.releases import RELEASES, get_release, release_names
from paddle_electra.tokenizer import SPECIAL_TOKENS, ElectraTokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "chinese-electra-small"
SENTENCES = ["今天天气很好", "北京今天天气很好上海今天下雨", "哪里天气好", "这个宾馆比较陈旧了特价的房间也很一般",
             "作为老的四星酒店房间依然很整洁相当不错", "我喜欢这本书", "服务态度很差", "北京", "上海"]


def build_model_dir(path, size="tiny"):
    """A discriminator model dir: vocab of the test sentences' chars, `size` preset shape, no dropout."""
    from paddle_electra.modeling import ElectraDiscriminator
    import paddle
    os.makedirs(path, exist_ok=True)
    chars = sorted({c for s in SENTENCES for c in s} | set("0123456789abcdefghijklmnopqrstuvwxyz"))
    vocab_path = os.path.join(path, "vocab.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        f.write("\n".join(list(SPECIAL_TOKENS) + chars) + "\n")
    tokenizer = ElectraTokenizer(vocab_path)
    config = preset(size).replace(vocab_size=tokenizer.vocab_size, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0)
    paddle.seed(1234)
    ElectraDiscriminator(config).save_pretrained(path, tokenizer=tokenizer)
    return path


def _is_loopback(host):
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return str(host) == "localhost"


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every non-loopback connect or DNS lookup made in this process during the test."""
    attempts = []
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            attempts.append(address)
            raise OSError(f"test forbids network access to {address}")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_loopback(host):
            attempts.append(host)
            raise socket.gaierror(f"test forbids DNS lookups of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    join_hub_threads()
    assert not attempts, f"outbound network attempts: {attempts}"


def join_hub_threads():
    """Wait for hub's background CacheUpdater requests (they time out after 1 s)."""
    for thread in threading.enumerate():
        if type(thread).__name__ == "CacheUpdater":
            thread.join(timeout=15)


@pytest.fixture(scope="module")
def hub_home():
    home = prepare_hub_home(os.environ["HUB_HOME"])
    assert hub_server_setting(home) == OFFLINE_SERVER
    return home


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_model_dir(str(tmp_path_factory.mktemp("model")))


@pytest.fixture(scope="module")
def archive(model_dir, tmp_path_factory):
    from paddle_electra.hub.package import package
    return package(model_dir, NAME, str(tmp_path_factory.mktemp("dist")), allow_other_shape=True)


@pytest.fixture(scope="module")
def installed(hub_home, archive):
    from paddle_electra.hub.install import install
    return install(archive, hub_home)


@pytest.fixture(scope="module")
def hub(hub_home):
    import paddlehub
    return paddlehub


def module(hub, **kwargs):
    kwargs.setdefault("dropout", 0.0)
    return hub.Module(name=NAME, **kwargs)


# ---- generated modules and the registry ----------------------------------------------------------------------
def test_registry_lists_the_eleven_releases():
    assert len(RELEASES) == len(set(release_names())) == 11
    assert {"chinese-electra-small", "chinese-electra-base", "chinese-electra-180g-small-ex",
            "chinese-legal-electra-large"} <= set(release_names())
    small = get_release("chinese_electra_180g_small")
    assert small.hf_discriminator == "hfl/chinese-electra-180g-small-discriminator"
    assert small.hf_generator == "hfl/chinese-electra-180g-small-generator" and small.size == "small"
    with pytest.raises(ConfigError, match="unknown release"):
        get_release("chinese-electra-tiny")


def test_generated_modules_are_committed_and_match_the_template():
    from modules.generate import expected_files, main
    expected = expected_files()
    assert len(expected) == 2 * len(RELEASES)
    for path, text in expected.items():
        with open(path, encoding="utf-8") as f:
            assert f.read() == text, f"{path} differs: run `python -m modules.generate`"
    assert main(["--check"]) == 0
    for release in RELEASES:
        folder = os.path.join(REPO, "modules", release.package_name)
        assert not os.path.exists(os.path.join(folder, "requirements.txt"))
        source = open(os.path.join(folder, "module.py"), encoding="utf-8").read()
        assert len(source.splitlines()) <= 30
        decorator = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)
                         and getattr(n.func, "id", None) == "moduleinfo")
        literals = {k.arg: k.value.value for k in decorator.keywords if k.arg != "meta"}
        assert literals["name"] == release.name and literals["type"] == "nlp/semantic_model"
        assert f"super({release.class_name}, self).__init__(" in source


def test_hub_reads_the_module_info_of_every_folder(hub):
    from paddlehub.module.module import Module
    for release in RELEASES:
        info = Module.load_module_info(os.path.join(REPO, "modules", release.package_name))
        assert info.name == release.name and info.version == "2.0.2" and "parameters" in info.summary


# ---- packaging -----------------------------------------------------------------------------------------------
def test_archive_layout_is_one_folder_and_reproducible(model_dir, archive, tmp_path):
    from paddle_electra.hub.package import package
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
    top = "chinese_electra_small"
    assert os.path.basename(archive) == "chinese_electra_small-2.0.2.tar.gz"
    assert names == [top] + [f"{top}/{n}" for n in sorted(
        ["README.md", "__init__.py", "config.json", "manifest.json", "model.safetensors", "module.py",
         "tokenizer_config.json", "vocab.txt"])]
    assert check_archive(archive)["top"] == top
    with tarfile.open(archive) as tar:  # the user's weights under a release name: neither HFL's name nor its summary
        module_py = tar.extractfile(f"{top}/module.py").read().decode("utf-8")
    assert "ymcui" not in module_py and "Not the chinese-electra-small release" in module_py
    again = package(model_dir, NAME, str(tmp_path), version="2.0.2", allow_other_shape=True)
    digest = [hashlib.sha256(open(path, "rb").read()).hexdigest() for path in (again, archive)]
    assert digest[0] == digest[1]
    other = package(model_dir, NAME, str(tmp_path), version="2.1.0", allow_other_shape=True)
    assert os.path.basename(other) == "chinese_electra_small-2.1.0.tar.gz"
    assert sorted(os.listdir(tmp_path)) == sorted(["chinese_electra_small-2.0.2.tar.gz",
                                                   "chinese_electra_small-2.1.0.tar.gz"])  # no staging left


def test_packager_refuses_bad_model_dirs(model_dir, tmp_path):
    import shutil
    from paddle_electra.hub.package import main, package
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    weights = broken / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-20] ^= 0xFF  # one flipped bit in the tensor data
    weights.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(WeightsError, match="checksum"):
        package(str(broken), NAME, str(out), allow_other_shape=True)
    weights.unlink()
    with pytest.raises(WeightsError, match="missing"):
        package(str(broken), NAME, str(out), allow_other_shape=True)
    with pytest.raises(ConfigError, match="'chinese-bert' is not a released model.*--description"):
        package(model_dir, "chinese-bert", str(out))
    with pytest.raises(ConfigError, match="version"):
        package(model_dir, NAME, str(out), version="2.0", allow_other_shape=True)
    # a release name promises the release's shape: a tiny model under it is refused unless explicitly allowed
    with pytest.raises(ConfigError, match=rf"config.json: num_hidden_layers \d+.* but the {NAME} module promises "
                                          rf"num_hidden_layers 12.*--allow-other-shape"):
        package(model_dir, NAME, str(out))
    assert main(["--model-dir", str(broken), "--name", NAME, "--out", str(out)]) == 2
    assert not out.exists() or not [p for p in out.iterdir() if p.name.endswith(".tar.gz")]


def test_packager_takes_your_own_model_under_its_own_name(model_dir, hub_home, hub, tmp_path):
    """Any model directory packages under a name of its own with --description (pretrain/demo/pipeline.py's module is built
    this way); the summary's shape and parameter count come from the directory, and it installs and loads."""
    from paddle_electra.hub.package import main, package
    from paddle_electra.hub.install import install
    from paddle_electra.weights import load_safetensors, parameter_count, read_config
    from paddlehub.module.module import Module
    archive = package(model_dir, "my-electra-tiny", str(tmp_path / "dist"), version="1.0.0",
                      description="Pretrained on my notes.", author="me")
    assert os.path.basename(archive) == "my_electra_tiny-1.0.0.tar.gz"
    folder = install(archive, hub_home)
    config, info = read_config(model_dir), Module.load_module_info(folder)
    params = parameter_count(os.path.join(model_dir, "model.safetensors"))
    assert params == sum(v.size for v in load_safetensors(os.path.join(model_dir, "model.safetensors")).values())
    assert info.name == "my-electra-tiny" and info.version == "1.0.0" and info.author == "me"
    assert info.summary == (f"my-electra-tiny, {config.num_hidden_layers}-layer, {config.hidden_size}-hidden, "
                            f"{config.num_attention_heads}-heads, {params / 1e6:.1f}M parameters. Pretrained on my "
                            f"notes.")
    with open(os.path.join(folder, "README.md"), encoding="utf-8") as f:
        assert info.summary in f.read()
    embedding = hub.Module(name="my-electra-tiny").get_embedding([["今天天气很好"]])
    assert np.isfinite(np.asarray(embedding[0][0])).all()
    out = str(tmp_path / "refused")
    with pytest.raises(ConfigError, match="is a released model's name"):
        package(model_dir, NAME, out, description="Pretrained on my notes.")
    with pytest.raises(ConfigError, match="--name must be lower-case"):
        package(model_dir, "My_Electra", out, description="Pretrained on my notes.")
    with pytest.raises(ConfigError, match="cannot hold quotes"):
        package(model_dir, "my-electra-tiny", out, description='say "hi"')
    assert main(["--model-dir", model_dir, "--name", "mine", "--out", out]) == 2  # no --description
    assert not os.path.exists(out) or not os.listdir(out)


# ---- install and load, offline -------------------------------------------------------------------------------
def test_network_guard_catches_outbound_connections(no_network):
    with pytest.raises(OSError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    assert no_network and "192.0.2.1" in str(no_network[0])
    no_network.clear()
    with socket.socket() as listener:  # loopback stays allowed
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        socket.create_connection(listener.getsockname(), timeout=1).close()
    assert no_network == []


def test_install_and_predict_offline(hub, installed, hub_home, no_network):
    assert hub_server_setting(hub_home) == OFFLINE_SERVER
    assert installed == os.path.join(hub_home, "modules", "chinese_electra_small")
    verify_manifest(installed)
    model = hub.Module(name=NAME, task="seq-cls", num_classes=2)
    result = model.predict([["今天天气很好"]])
    assert len(result) == 1 and result[0] in (0, 1)
    assert type(model).__name__ == "ChineseElectraSmall" and model.directory == installed
    by_dir = hub.Module(directory=installed, task="seq-cls", label_map={0: "neg", 1: "pos"})
    assert by_dir.predict([["今天天气很好"], ["北京"]]) in ([a, b] for a in ("neg", "pos") for b in ("neg", "pos"))
    np.testing.assert_allclose(by_dir.get_embedding([["北京"]])[0][0], model.get_embedding([["北京"]])[0][0],
                               atol=1e-6)  # same pretrained transformer either way


def test_predict_pads_per_batch_and_keeps_input_order(hub, installed):
    model = module(hub, task="seq-cls", label_map={0: "negative", 1: "positive"})
    data = [[s] for s in SENTENCES] + [["今天天气很好", "北京"], ["我喜欢这本书", "服务态度很差"]]
    one_by_one = [model.predict([x], return_prob=True)[1][0] for x in data]
    labels, batched = model.predict(data, batch_size=4, return_prob=True)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)  # padding and grouping change nothing
    assert labels == [("negative", "positive")[int(np.argmax(p))] for p in one_by_one]
    # the same numbers as running the classifier by hand on [CLS] text [SEP]
    import paddle
    enc = model.get_tokenizer().encode(SENTENCES[1])
    with paddle.no_grad():
        logits = model.model(paddle.to_tensor([enc["input_ids"]]), paddle.to_tensor([enc["token_type_ids"]]))
    np.testing.assert_allclose(one_by_one[1], paddle.nn.functional.softmax(logits).numpy()[0], atol=1e-5)
    # truncation to max_seq_len: the first max_seq_len - 2 chars decide
    short = model.predict([[SENTENCES[3]]], max_seq_len=6, return_prob=True)[1][0]
    same = model.predict([[SENTENCES[3][:4]]], return_prob=True)[1][0]
    np.testing.assert_allclose(short, same, atol=1e-5)


def test_predict_precision_paths_are_named_and_int8_stays_close(hub, installed, caplog):
    """precision='auto' decides after GATE_ROWS rows and logs the path; 'fp32' and 'int8' force theirs; the int8
    path's probabilities stay near fp32's."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("paddle2onnx")
    import logging
    import paddle
    paddle.seed(5)
    auto = module(hub, task="seq-cls")
    data = [[SENTENCES[i % len(SENTENCES)][: 3 + i % 9]] for i in range(auto.GATE_ROWS)]
    with caplog.at_level(logging.INFO, logger="paddle_electra.hub.module"):
        auto.predict(data, batch_size=16)
    assert auto._predictor.choice in ("int8", "fp32")
    assert f"ONNX Runtime {auto._predictor.choice} (precision='auto'" in caplog.text
    fp32, int8 = module(hub, task="seq-cls", precision="fp32"), module(hub, task="seq-cls", precision="int8")
    fp32.set_state_dict(auto.state_dict())
    int8.set_state_dict(auto.state_dict())
    _, want = fp32.predict(data, batch_size=16, return_prob=True)
    _, got = int8.predict(data, batch_size=16, return_prob=True)
    assert (fp32._predictor.precision, int8._predictor.precision) == ("fp32", "int8")
    assert np.abs(np.asarray(got) - np.asarray(want)).max() < 0.05
    with pytest.raises(ConfigError, match="precision"):
        module(hub, task="seq-cls", precision="fp16")


def test_auto_precision_keeps_fp32_when_quantizing_fails(hub, installed, monkeypatch, caplog):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("paddle2onnx")
    import logging
    import paddle_electra.export as export

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported graph")

    monkeypatch.setattr(export, "quantize_onnx", broken)
    auto = module(hub, task="seq-cls")
    with caplog.at_level(logging.WARNING, logger="paddle_electra.hub.module"):
        auto.predict([[SENTENCES[i % len(SENTENCES)]] for i in range(auto.FAST_MIN_EXAMPLES)], batch_size=16)
    assert type(auto._predictor).__name__ == "OnnxRunner" and auto._predictor.precision == "fp32"
    assert "int8 unavailable: RuntimeError: unsupported graph" in caplog.text


@pytest.mark.parametrize("task,make", [
    ("seq-cls", lambda i: [SENTENCES[i % len(SENTENCES)][: 3 + i % 9]]),
    ("token-cls", lambda i: [SENTENCES[i % len(SENTENCES)][: 2 + i % 7]]),
    ("text-matching", lambda i: [SENTENCES[i % len(SENTENCES)][: 3 + i % 5], SENTENCES[(i + 1) % len(SENTENCES)]]),
    ("reading-comprehension", lambda i: [SENTENCES[i % len(SENTENCES)] * (1 + i % 3), "哪里天气好"]),
])
def test_predict_fast_path_is_the_default_and_equals_dygraph(hub, installed, task, make):
    """predict() exports to a Paddle Inference predictor once asked for FAST_MIN_EXAMPLES examples on CPU; the
    outputs equal dygraph's, the predictor is reused, and any weight change sends predict() back to the new weights."""
    import paddle
    paddle.seed(3)
    kwargs = {"label_map": {0: "a", 1: "b", 2: "c"}} if task == "token-cls" else {}
    fast = module(hub, task=task, **kwargs)
    slow = module(hub, task=task, fast_inference=False, **kwargs)
    slow.set_state_dict(fast.state_dict())  # the same (randomly initialised) heads
    data = [make(i) for i in range(fast.FAST_MIN_EXAMPLES)]
    extra = {"max_seq_len": 24, "doc_stride": 8} if task == "reading-comprehension" else {}
    def same(got, want):
        assert got[0] == want[0]
        for a, b in zip(got[1], want[1]):  # per example: token-cls rows differ in length
            np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), atol=1e-5)

    same(fast.predict(data, batch_size=8, return_prob=True, **extra),
         slow.predict(data, batch_size=8, return_prob=True, **extra))
    assert fast._predictor is not None and slow._predictor is None
    import importlib.util
    onnx_installed = all(importlib.util.find_spec(m) for m in ("onnxruntime", "paddle2onnx"))
    # precision "auto": int8 and fp32 side by side for the first GATE_ROWS rows, fp32's outputs returned meanwhile
    assert type(fast._predictor).__name__ == ("GatedRunner" if onnx_installed else "InferenceRunner")
    predictor = fast._predictor
    fast.predict(data[:2], batch_size=8, **extra)  # a small call reuses the exported predictor
    assert fast._predictor is predictor
    with paddle.no_grad():  # new weights (as after training or a checkpoint load): the old predictor is dropped
        for p in fast.model.parameters():
            p.set_value(p * 1.5)
    slow.set_state_dict(fast.state_dict())
    same(fast.predict(data[:3], return_prob=True, **extra), slow.predict(data[:3], return_prob=True, **extra))
    assert fast._predictor is None  # fewer than FAST_MIN_EXAMPLES: dygraph until the next large call
    fast.predict(data, batch_size=8, **extra)
    assert fast._predictor is not None
    fast.train()  # hub.Trainer switches to training: the predictor goes at once
    assert fast._predictor is None


def test_label_map_conventions(hub, installed):
    import paddle
    for label_map in ({0: "neg", 1: "pos"}, {"0": "neg", "1": "pos"}, {"neg": 0, "pos": 1}):
        paddle.seed(0)
        assert module(hub, task="seq-cls", label_map=label_map).label_map == {0: "neg", 1: "pos"}
    for bad in ({0: "a", 2: "b"}, {"a": "b", "c": "d"}, {0: "only"}):
        with pytest.raises(ConfigError, match="label_map"):
            module(hub, task="seq-cls", label_map=bad)
    with pytest.raises(ConfigError, match="unknown task"):
        module(hub, task="ner")
    assert module(hub, task="seq-cls", num_classes=3).num_classes == 3


def test_chunk_tags_for_f1_follow_hubs_suffix_flag():
    from paddle_electra.hub.module import _chunk_tags
    assert _chunk_tags({0: "O", 1: "B-LOC", 2: "I-LOC"}, False) == ["O", "B-LOC", "I-LOC"]
    assert _chunk_tags({0: "O", 1: "LOC-B", 2: "LOC-I"}, True) == ["O", "B-LOC", "I-LOC"]
    assert _chunk_tags({0: "O", 1: "LOC-B"}, False) is None  # not chunk tags: no F1, accuracy only
    assert _chunk_tags({0: 0, 1: 1}, False) is None


def test_get_embedding_shapes_and_order(hub, installed):
    model = module(hub)
    hidden = model.model.config.hidden_size
    data = [[SENTENCES[1]], [SENTENCES[0]], [SENTENCES[0], SENTENCES[2]]]
    out = model.get_embedding(data, batch_size=2)
    tok = model.get_tokenizer()
    for (pooled, sequence), example in zip(out, data):
        n = len(tok.encode(*example)["input_ids"])
        assert len(pooled) == hidden and np.asarray(sequence).shape == (n, hidden)
        np.testing.assert_allclose(pooled, sequence[0], atol=0)  # ELECTRA's pooled feature is the [CLS] state
    alone = model.get_embedding([data[1]])[0]
    np.testing.assert_allclose(out[1][0], alone[0], atol=1e-5)
    assert model.predict(data, batch_size=8) == model.get_embedding(data)  # task None: embeddings, as in hub
    # any task's module gives the backbone's features
    assert np.allclose(module(hub, task="seq-cls").get_embedding([data[0]])[0][0], out[0][0], atol=1e-5)


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_seq_cls_trains_with_hub_trainer_on_a_hub_dataset_and_reloads_its_checkpoint(hub, installed, tmp_path):
    """hub's workflow: a hub dataset built with module.get_tokenizer(), hub.Trainer, then load_checkpoint."""
    import paddle
    from paddlehub.datasets.base_nlp_dataset import TextClassificationDataset
    paddle.seed(7)
    label_map = {0: "negative", 1: "positive"}
    model = module(hub, task="seq-cls", label_map=label_map)
    texts = [("今天天气很好", 1), ("服务态度很差", 0), ("相当不错", 1), ("比较陈旧了", 0)]
    _write(tmp_path / "train.tsv", ["label\ttext_a"] + [f"{y}\t{t}" for t, y in texts])
    dataset = TextClassificationDataset(base_path=str(tmp_path), data_file="train.tsv", tokenizer=model.get_tokenizer(),
                                        max_seq_len=16, label_list=["0", "1"], is_file_with_header=True)
    ids, _, label = dataset[0]
    assert ids.shape == (16,) and ids[0] == model.get_tokenizer().cls_token_id and int(label) == 1
    optimizer = paddle.optimizer.AdamW(learning_rate=3e-3, parameters=model.parameters())
    trainer = hub.Trainer(model, optimizer, checkpoint_dir=str(tmp_path / "ckpt"), use_vdl=False)
    trainer.train(dataset, epochs=15, batch_size=2, eval_dataset=dataset, save_interval=15, log_interval=100)
    assert model.predict([[t] for t, _ in texts]) == [label_map[y] for _, y in texts]
    result = trainer.evaluate(dataset, batch_size=4)
    assert result["metrics"]["acc"] == 1.0 and result["loss"] < 0.3
    best = tmp_path / "ckpt" / "best_model" / "model.pdparams"
    assert best.exists()
    reloaded = module(hub, task="seq-cls", label_map=label_map, load_checkpoint=str(best))
    np.testing.assert_allclose(reloaded.predict([[t] for t, _ in texts], return_prob=True)[1],
                               model.predict([[t] for t, _ in texts], return_prob=True)[1], atol=1e-5)
    # the pickle-free copy loads to the same numbers
    model.save_checkpoint(str(tmp_path / "best.safetensors"))
    again = module(hub, task="seq-cls", label_map=label_map, load_checkpoint=str(tmp_path / "best.safetensors"))
    assert again.predict([["今天天气很好"]]) == ["positive"]


def _fit(model, batch, steps, lr=3e-3):
    import paddle
    optimizer = paddle.optimizer.AdamW(learning_rate=lr, parameters=model.parameters())
    model.train()
    for step in range(steps):
        out = model.training_step(batch, step)
        out["loss"].backward()
        optimizer.step()
        optimizer.clear_grad()
    return out


def test_token_cls_trains_on_a_hub_dataset_and_labels_every_token(hub, installed, tmp_path):
    import paddle
    from paddlehub.datasets.base_nlp_dataset import SeqLabelingDataset
    paddle.seed(3)
    tags = {0: "O", 1: "B-LOC", 2: "I-LOC"}
    model = module(hub, task="token-cls", label_map=tags)
    words, word_tags = ["北京", "今天天气很好", "上海", "今天下雨"], ["B-LOC", "O", "B-LOC", "O"]
    _write(tmp_path / "ner.tsv", ["\002".join(words) + "\t" + "\002".join(word_tags)])
    dataset = SeqLabelingDataset(base_path=str(tmp_path), data_file="ner.tsv", tokenizer=model.get_tokenizer(),
                                 max_seq_len=20, label_list=list(tags.values()))
    text = "".join(words)
    gold = [1, 2, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0]  # hub re-segments B-LOC words into B-LOC I-LOC
    _, _, length, labels = dataset[0]
    assert int(length) == len(gold) + 2 and list(labels[1:len(gold) + 1]) == gold and labels[-1] == -100
    out = _fit(model, [paddle.to_tensor(np.asarray(x)[None]) for x in dataset[0]], 40)
    assert out["metrics"]["acc"] == 1.0 and out["metrics"]["f1_score"] == 1.0
    predicted = model.predict([[text], ["上海"]], batch_size=2)
    assert predicted[0] == [tags[g] for g in gold]
    assert len(predicted[1]) == 2
    # hub's pre-split input: words joined by \002
    assert model.predict([["\002".join(words)]]) == [predicted[0]]
    _, probs = model.predict([[text]], return_prob=True)
    assert np.asarray(probs[0]).shape == (len(gold), 3)


def test_text_matching_trains_on_a_hub_dataset(hub, installed, tmp_path):
    import paddle
    from paddlehub.datasets.base_nlp_dataset import TextMatchingDataset
    paddle.seed(5)
    model = module(hub, task="text-matching", label_map={0: "different", 1: "similar"})
    pairs = [("今天天气很好", "天气很好", 1), ("今天天气很好", "服务态度很差", 0)]
    _write(tmp_path / "match.tsv", [f"{q}\t{t}\t{y}" for q, t, y in pairs])
    dataset = TextMatchingDataset(base_path=str(tmp_path), data_file="match.tsv", tokenizer=model.get_tokenizer(),
                                  max_seq_len=12, label_list=["0", "1"])
    batch = [paddle.to_tensor(np.stack([np.asarray(dataset[i][k]) for i in range(2)])) for k in range(5)]
    _fit(model, batch, 30)
    assert model.validation_step(batch, 0)["metrics"]["acc"] == 1.0
    labels, probs = model.predict([[q, t] for q, t, _ in pairs], return_prob=True)
    assert labels == ["similar", "different"]
    np.testing.assert_allclose(np.sum(probs, axis=1), 1.0, atol=1e-6)
    with pytest.raises(DataError, match="query, title"):
        model.predict([["只有一句"]])


def test_reading_comprehension_trains_and_decodes_spans_through_offsets(hub, installed):
    import paddle
    paddle.seed(11)
    model = module(hub, task="reading-comprehension")
    tok = model.get_tokenizer()
    context, question = "北京今天天气很好上海今天下雨", "哪里天气好"
    enc = tok.encode(question, context, max_seq_len=32, padding="max_length")
    first = enc["token_type_ids"].index(1)  # context starts after [CLS] question [SEP]
    batch = [paddle.to_tensor([enc["input_ids"]]), paddle.to_tensor([enc["token_type_ids"]]),
             paddle.to_tensor([first]), paddle.to_tensor([first + 1])]  # gold answer: 北京
    assert _fit(model, batch, 40)["metrics"]["acc"] == 1.0
    answers, probs = model.predict([[context, question]], max_seq_len=32, return_prob=True)
    assert answers == ["北京"] and 0 < probs[0] <= 1
    # long contexts go through doc_stride windows; every answer is a span of its context, at most max_answer_len
    long_context = "今天天气很好" * 6 + context
    answers = model.predict([[long_context, question], [context, question]], max_seq_len=12, doc_stride=3,
                            max_answer_len=4, batch_size=3)
    assert all(a in c and 1 <= len(a) <= 4 for a, c in zip(answers, [long_context, context]))
    with pytest.raises(DataError, match="context, question"):
        model.predict([[context]])
    with pytest.raises(DataError, match="outside the sequence"):
        model.training_step(batch[:2] + [paddle.to_tensor([40]), paddle.to_tensor([41])], 0)


def test_bad_inputs_give_clear_errors(hub, installed):
    model = module(hub, task="seq-cls")
    for data, field in (("今天天气很好", "data"), ([["a", "b", "c"]], "data[0]"), ([[1]], "data[0]"),
                        ([["ok"], None], "data[1]")):
        with pytest.raises(DataError) as err:
            model.predict(data)
        assert err.value.field == field
    for kwargs in ({"max_seq_len": 2}, {"max_seq_len": 4096}, {"batch_size": 0}):
        with pytest.raises(ConfigError):
            model.predict([["今天"]], **kwargs)
    assert model.predict([]) == []
    import paddle
    if not paddle.is_compiled_with_cuda():
        with pytest.raises(ElectraError, match="use_gpu"):
            model.predict([["今天"]], use_gpu=True)
    with pytest.raises(ConfigError, match="no training objective"):
        module(hub).training_step([paddle.to_tensor([[2, 3]])], 0)
    with pytest.raises(ConfigError, match="no model directory"):
        from paddle_electra.hub.module import ElectraHubModule
        ElectraHubModule(task="seq-cls")
    with pytest.raises(ConfigError, match="pooling='mean' is a seq-cls option"):
        module(hub, task="token-cls", pooling="mean")
    with pytest.raises(ConfigError, match="unknown pooling 'max'"):
        module(hub, task="seq-cls", pooling="max")
    assert module(hub, task="seq-cls", pooling="mean").model.pooling == "mean"
    with pytest.raises(ConfigError, match="backbone_dropout must be in"):
        module(hub, task="seq-cls", backbone_dropout=1.0)


def test_backbone_dropout_reaches_every_layer_and_only_training(installed, hub):
    """backbone_dropout overrides the config's hidden and attention dropout (fine-tuning a model pretrained without
    dropout); eval mode (predict, evaluation) is unchanged."""
    import paddle
    plain, dropped = module(hub, task="seq-cls"), module(hub, task="seq-cls", backbone_dropout=0.3)
    rates = {round(layer.p, 6) for name, layer in dropped.model.electra.named_sublayers()
             if isinstance(layer, paddle.nn.Dropout)}
    assert rates == {0.3}
    assert {layer.attention_dropout for layer in dropped.model.electra.sublayers()
            if hasattr(layer, "attention_dropout")} == {0.3}
    dropped.model.set_state_dict(plain.model.state_dict())
    ids = paddle.to_tensor([[2, 5, 6, 7, 3]])
    plain.model.eval(), dropped.model.eval()
    np.testing.assert_allclose(plain.model(ids).numpy(), dropped.model(ids).numpy(), rtol=1e-6, atol=1e-6)
    dropped.model.train()
    paddle.seed(0)
    assert not np.allclose(plain.model(ids).numpy(), dropped.model(ids).numpy(), atol=1e-6)


def test_module_folder_without_weights_is_refused(hub):
    with pytest.raises(WeightsError, match="converters package"):
        hub.Module(directory=os.path.join(REPO, "modules", "chinese_electra_base"))


# ---- pickle checkpoints --------------------------------------------------------------------------------------
class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file when unpickled


def test_malicious_pickle_checkpoint_is_refused(hub, installed, tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "model.pdparams"
    bad.write_bytes(pickle.dumps({"model.classifier.classifier.bias": _Exploit(str(marker))}, protocol=4))
    with pytest.raises(WeightsError, match="refused to unpickle"):
        module(hub, task="seq-cls", load_checkpoint=str(bad))
    assert not marker.exists()
    truncated = tmp_path / "truncated.pdparams"
    import paddle
    good = module(hub, task="seq-cls")
    paddle.save(good.state_dict(), str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(WeightsError, match="truncated.pdparams"):
        module(hub, task="seq-cls", load_checkpoint=str(truncated))
    with pytest.raises(WeightsError, match="not found"):
        module(hub, task="seq-cls", load_checkpoint=str(tmp_path / "absent.pdparams"))
    # a checkpoint of another task does not fit: named tensors, no silent partial load
    paddle.save(module(hub, task="token-cls", num_classes=5).state_dict(), str(tmp_path / "tok.pdparams"))
    with pytest.raises(WeightsError, match="classifier"):
        module(hub, task="seq-cls", load_checkpoint=str(tmp_path / "tok.pdparams"))
    # the opt-in full pickle path still reads plain state dicts, with a warning
    paddle.save(good.state_dict(), str(tmp_path / "good.pdparams"))
    with pytest.warns(UserWarning, match="full pickle"):
        module(hub, task="seq-cls", load_checkpoint=str(tmp_path / "good.pdparams"), allow_pickle=True)


# ---- archive safety ------------------------------------------------------------------------------------------
def _tar(path, members):
    """members: (name, kind, payload) with kind file / symlink / hardlink / fifo."""
    import io
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE,
                         "dir": tarfile.DIRTYPE}[kind]
            info.linkname = payload or ""
            tar.addfile(info)
    return str(path)


MODULE_PY = b"# module\n"


@pytest.mark.parametrize("members, reason", [
    ([("m/module.py", "file", MODULE_PY), ("m/../../escaped.txt", "file", b"x")], "path traversal"),
    ([("m/module.py", "file", MODULE_PY), ("../escaped.txt", "file", b"x")], "path traversal"),
    ([("m/module.py", "file", MODULE_PY), ("/tmp/escaped.txt", "file", b"x")], "absolute path"),
    ([("m/module.py", "file", MODULE_PY), ("m/link", "symlink", "/etc/passwd")], "symlink"),
    ([("m/module.py", "file", MODULE_PY), ("m/hard", "hardlink", "m/module.py")], "hardlink"),
    ([("m/module.py", "file", MODULE_PY), ("m/pipe", "fifo", None)], "special"),
    ([("m/module.py", "file", MODULE_PY), ("m/requirements.txt", "file", b"evil-package\n")], "pip-install"),
    ([("m/module.py", "file", MODULE_PY), ("n/module.py", "file", MODULE_PY)], "one top-level folder"),
    ([("m/readme.txt", "file", b"x")], "module.py missing"),
    ([("m/module.py", "file", MODULE_PY), ("m/module.py", "file", b"import os")], "appears twice"),
    ([("m/module.py", "file", MODULE_PY), ("m/a", "file", b"x"), ("m/a/b", "file", b"y")], "both a file and"),
])
def test_malicious_tar_archives_are_refused_and_nothing_is_written(tmp_path, members, reason):
    archive = _tar(tmp_path / "evil.tar.gz", members)
    destination = tmp_path / "dest"
    with pytest.raises(ArchiveError, match=reason):
        safe_extract(archive, str(destination))
    assert not destination.exists() and not (tmp_path / "escaped.txt").exists()


def test_malicious_zip_archives_are_refused(tmp_path):
    for name, payload, reason in (("../escaped.txt", b"x", "path traversal"), ("/abs.txt", b"x", "absolute")):
        path = tmp_path / "evil.zip"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("m/module.py", MODULE_PY)
            z.writestr(name, payload)
        with pytest.raises(ArchiveError, match=reason):
            check_archive(str(path))
    link = zipfile.ZipInfo("m/link")
    link.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("m/module.py", MODULE_PY)
        z.writestr(link, "/etc/passwd")
    with pytest.raises(ArchiveError, match="symlink"):
        check_archive(str(path))


def test_install_wrapper_refuses_traversal_and_tampered_archives(hub, hub_home, archive, tmp_path):
    from paddle_electra.hub.install import main
    evil = _tar(tmp_path / "evil.tar.gz", [("chinese_electra_small/module.py", "file", MODULE_PY),
                                           ("chinese_electra_small/../../../escaped.txt", "file", b"x")])
    before = set(os.listdir(os.path.join(hub_home, "modules")))
    assert main([evil, "--hub-home", hub_home]) == 2
    assert set(os.listdir(os.path.join(hub_home, "modules"))) == before
    assert not (tmp_path / "escaped.txt").exists()
    assert not os.path.exists(os.path.join(os.path.dirname(hub_home), "escaped.txt"))
    # a weights file changed after packaging fails the manifest check
    extracted = safe_extract(archive, str(tmp_path / "x"))
    with open(os.path.join(extracted, "config.json"), "a", encoding="utf-8") as f:
        f.write(" ")
    with pytest.raises(ArchiveError, match="checksum mismatch"):
        verify_manifest(extracted)


def test_prepare_hub_home_refuses_a_second_home_once_hub_is_imported(hub, tmp_path):
    with pytest.raises(ElectraError, match="already imported"):
        prepare_hub_home(str(tmp_path / "other"))
    path = write_offline_config(str(tmp_path / "fresh"))
    assert open(path, encoding="utf-8").read().strip() == f"server: {OFFLINE_SERVER}"


# ---- the hub CLI, in subprocesses with their own HUB_HOME -----------------------------------------------------
class _ProxyTrap:
    """A loopback listener set as HTTP(S)_PROXY: any request hub makes to a non-loopback host lands here."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.hits = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()

    def env(self, home):
        url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        env = dict(os.environ, HUB_HOME=home, HTTP_PROXY=url, HTTPS_PROXY=url, http_proxy=url, https_proxy=url,
                   NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", PYTHONWARNINGS="ignore",
                   GLOG_minloglevel="2", OMP_NUM_THREADS="1")
        env["PPNLP_HOME"] = os.path.join(home, "ppnlp")
        return env


def _hub(args, env):
    hub_cli = os.path.join(os.path.dirname(sys.executable), "hub")
    return subprocess.run([hub_cli, *args], env=env, capture_output=True, text=True, timeout=180, cwd=REPO)


def test_hub_cli_install_list_show_uninstall_offline(archive, tmp_path):
    home = str(tmp_path / "hubhome")
    write_offline_config(home)
    trap = _ProxyTrap()
    env = trap.env(home)
    result = _hub(["install", archive], env)
    assert result.returncode == 0, result.stderr + result.stdout
    folder = os.path.join(home, "modules", "chinese_electra_small")
    assert os.path.isfile(os.path.join(folder, "model.safetensors"))
    listed = _hub(["list"], env)
    assert NAME in listed.stdout and "modules/chinese_electra_small" in listed.stdout  # hub wraps long paths
    shown = _hub(["show", NAME], env)
    # a tiny model packaged under a release name (--allow-other-shape) is not credited to HFL
    assert "2.0.2" in shown.stdout and "ymcui" not in shown.stdout and "paddle-electra" in shown.stdout
    removed = _hub(["uninstall", NAME], env)
    assert removed.returncode == 0 and not os.path.exists(folder)
    assert trap.hits == 0 and hub_server_setting(home) == OFFLINE_SERVER


@pytest.mark.slow
def test_hub_calls_home_without_the_offline_config(archive, tmp_path):
    """Control for the test above: with hub's default server setting, loading a module reaches for the network."""
    load = "import sys, paddlehub as hub; hub.Module(directory=sys.argv[1])"
    # prepare_hub_home after paddlehub is imported (same home) switches the running hub's server setting too
    late = ("import os, sys, paddlehub as hub; from paddle_electra.hub.home import prepare_hub_home; "
            "prepare_hub_home(os.environ['HUB_HOME']); hub.Module(directory=sys.argv[1])")
    trap = _ProxyTrap()
    extracted = safe_extract(archive, str(tmp_path / "x"))
    for case, code, expect_hits in (("default", load, True), ("offline", load, False), ("late", late, False)):
        home = str(tmp_path / case)
        if case == "offline":
            write_offline_config(home)
        before = trap.hits
        result = subprocess.run([sys.executable, "-c", code, extracted], env=trap.env(home), capture_output=True,
                                text=True, timeout=180, cwd=REPO)
        assert result.returncode == 0, result.stderr
        assert (trap.hits > before) == expect_hits, case
