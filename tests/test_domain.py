"""`python -m pretrain.demo.domain` at toy size: the CAIL split keeps evaluation facts out of the pretraining text, both
continued runs start from the general model with the same steps, and every comparison is paired on the same seeds."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRIMES = ["盗窃", "故意伤害", "诈骗"]
FACTS = {"盗窃": "被告人趁夜色潜入邻居家中，窃取现金两千元。后被公安机关抓获。",
         "故意伤害": "被告人与被害人发生口角，持木棍将被害人打成轻伤。案发后被告人主动投案。",
         "诈骗": "被告人冒充银行工作人员，骗取被害人转账五万元。赃款已被挥霍。"}


def _run(args, env, timeout=900):
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def general(tmp_path_factory):
    """A toy 'finished demo workdir': corpus/train.txt and pretrain/export/{discriminator,generator}."""
    root = tmp_path_factory.mktemp("general")
    env = dict(os.environ, PYTHONPATH=REPO)
    (root / "corpus").mkdir()
    text = "\n\n".join(["今天天气很好。\n我们一起去公园散步。", "经济发展很快。\n人民生活水平不断提高。"] * 30)
    text += "\n\n" + "\n\n".join(FACTS.values())  # the legal characters must be in the toy vocab
    (root / "corpus" / "train.txt").write_text(text + "\n", encoding="utf-8")
    proc = _run(["-m", "pretrain.data", "--input", str(root / "corpus" / "train.txt"), "--output", str(root / "data"),
                 "--build-vocab", "300", "--min-frequency", "1", "--max-seq-length", "32", "--quiet"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shape = json.dumps({"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 64,
                        "embedding_size": 32})
    proc = _run(["-m", "pretrain.run", "--data", str(root / "data"), "--output-dir", str(root / "pretrain"), "--size",
                 "tiny", "--discriminator", shape, "--generator-hidden-size", "0.5", "--num-train-steps", "3",
                 "--warmup-steps", "1", "--train-batch-size", "8", "--progress", "false"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root


def test_domain_run_at_toy_size(general, tmp_path):
    cail = tmp_path / "cail"
    cail.mkdir()
    cases = []
    for i in range(60):
        crime = CRIMES[i % 3]
        cases.append(json.dumps({"fact": f"{FACTS[crime]}案件编号{i}。", "meta": {"accusation": [crime]}},
                                ensure_ascii=False))
    (cail / "data_train_sample.json").write_bytes(("\n".join(cases) + "\n").encode("gb18030"))
    (cail / "accu.txt").write_text("\n".join(CRIMES) + "\n", encoding="utf-8")
    workdir = tmp_path / "domain"
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = _run(["-m", "pretrain.demo.domain", "--general", str(general), "--cail-dir", str(cail), "--steps", "3",
                 "--seeds", "2", "--workdir", str(workdir)], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((workdir / "domain.json").read_text())
    assert result["split"] == {"cases": 60, "train_cases": 48, "dev_cases": 12,
                               "legal_text_chars": result["split"]["legal_text_chars"]}
    legal = (workdir / "legal.txt").read_text(encoding="utf-8")
    for i in range(60):  # evaluation cases (every 5th) never reach the pretraining text
        assert (f"案件编号{i}。" in legal) == (i % 5 != 0)
    dev = [json.loads(line) for line in (workdir / "cail" / "dev.json").read_text(encoding="utf-8").splitlines()]
    assert [d["fact"][-6:] for d in dev][:2] == ["案件编号0。", "案件编号5。"]
    assert {r: v["steps"] for r, v in result["pretraining"].items()} == {"legal": 3, "general": 3}
    for name in ("legal", "general"):  # both start from the general model
        report = json.loads((workdir / f"continue-{name}" / "init_report.json").read_text())
        assert str(general) in json.dumps(report)
    tuned = result["models"]
    assert list(tuned) == ["general", "general+general", "general+legal", "random-init"]
    for c in result["comparisons"]:
        ours, theirs = tuned[c["model"]]["dev_per_seed"], tuned[c["versus"]]["dev_per_seed"]
        assert list(ours) == list(theirs)  # the same seeds
        assert c["difference_mean"] == pytest.approx(np.mean([ours[s] - theirs[s] for s in ours]))
    assert result["baseline"]["metric"] == "accuracy"
    assert "| general+legal | general+general |" in (workdir / "domain.md").read_text()
    # bad input: one line, exit code 2
    proc = _run(["-m", "pretrain.demo.domain", "--general", str(tmp_path / "nothing"), "--cail-dir", str(cail),
                 "--workdir", str(tmp_path / "w2")], env, timeout=120)
    assert proc.returncode == 2 and "pretrain/export/discriminator is missing" in proc.stderr
