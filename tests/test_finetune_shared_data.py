"""The seven benchmark readers on the real files in ../shared/data, and a few training steps of each task through
finetune/run.py with a tiny model on the real Chinese vocab (the smoke protocol of finetune/smoke.py, shrunk)."""
import json
import os

import pytest

from finetune.config import FinetuneConfig
from finetune.smoke import QA_TASKS, SMOKE_TASKS, run_args
from finetune.tasks import get_task

pytestmark = pytest.mark.needs_shared_data

# (examples per split after the smoke protocol's generated splits, reader notes/skips) on ../shared/data
EXPECTED = {
    "cmrc2018": {"train": 10142, "dev": 3219},
    "drcd": {"train": 1826, "dev": 1698},
    "xnli": {"train": 1203, "dev": 1287},
    "chnsenticorp": {"train": 9600, "dev": 1200},
    "lcqmc": {"train": 238766, "dev": 8802},
    "bqcorpus": {"train": 4954, "dev": 5046},
    "cail2018": {"train": 2613, "dev": 659},
}


def smoke_config(task):
    _, extra = SMOKE_TASKS[task]
    return FinetuneConfig(**extra)


@pytest.mark.parametrize("name", list(SMOKE_TASKS))
def test_readers_on_the_real_files(shared_data, name):
    task = get_task(name)
    folder, _ = SMOKE_TASKS[name]
    splits = task.load_splits(shared_data / folder, smoke_config(name))
    assert {k: len(v.examples) for k, v in splits.items()} == EXPECTED[name]
    assert all(split.labelled for split in splits.values())
    if name == "cmrc2018":
        assert splits["train"].stats.notes == {"answer_start_realigned": 21}
    if name == "cail2018":
        assert len(task.labels) == 202 and splits["train"].stats.skipped == {"not exactly one accusation": 403}
    if name == "xnli":
        assert {e.label for e in splits["dev"].examples} == {"contradiction", "entailment", "neutral"}


_MODELS = {}


@pytest.fixture
def real_vocab_model(shared_data, tmp_path_factory):
    """A 2-layer random model with the real 21,128-token Chinese BERT vocab (built once per session)."""
    if "tiny" in _MODELS:
        return _MODELS["tiny"]
    import paddle
    from paddle_electra import preset
    from paddle_electra.modeling import ElectraDiscriminator
    from paddle_electra.tokenizer import ElectraTokenizer
    folder = str(tmp_path_factory.mktemp("real-vocab-tiny"))
    tokenizer = ElectraTokenizer(str(shared_data / "vocab" / "chinese_bert_vocab.txt"))
    config = preset("tiny").replace(vocab_size=tokenizer.vocab_size, hidden_size=32, embedding_size=16,
                                    intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    paddle.seed(0)
    ElectraDiscriminator(config).save_pretrained(folder, tokenizer=tokenizer)
    _MODELS["tiny"] = folder
    return folder


@pytest.mark.parametrize("name", list(SMOKE_TASKS))
def test_each_task_trains_a_few_steps_on_the_real_files(shared_data, real_vocab_model, tmp_path, name):
    from finetune.run import main
    args = run_args(name, str(shared_data), real_vocab_model, str(tmp_path), steps=3, batch_size=8,
                    max_eval_examples=24, qa_max_seq_length=128, classification_max_seq_length=64)
    assert main(args) == 0
    with open(tmp_path / name / "metrics.json", encoding="utf-8") as f:
        metrics = json.load(f)
    dev = metrics["runs"][0]["dev"]
    predictions = [p for p in os.listdir(tmp_path / name / "seed_1") if p.startswith("dev_predictions")]
    assert len(predictions) == 1
    if name in QA_TASKS:
        assert dev["TOTAL"] == 24 and 0 <= dev["F1"] <= 100
        with open(tmp_path / name / "seed_1" / predictions[0], encoding="utf-8") as f:
            assert len(json.load(f)) == 24
    else:
        assert dev["count"] == 24 and 0 <= dev["accuracy"] <= 100
    assert metrics["data"]["train"]["examples"] == (6 if name in QA_TASKS else 24)  # steps x batch (/ 4 for QA)
    assert os.listdir(tmp_path / name / "seed_1" / "visualization")
