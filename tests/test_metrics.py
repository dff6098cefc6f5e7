"""Scorers: CMRC/DRCD EM+F1 against numbers from the official script, accuracy, chunk F1, discriminator AUC, CLI."""
import hashlib
import importlib.util
import itertools
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from conftest import reference  # a missing reference library: skip here, fail under CI=true
from hypothesis import given, settings
from hypothesis import strategies as st

from paddle_electra.errors import DataError
from paddle_electra.metrics import (
    CMRC_SP_CHAR,
    AccuracyScorer,
    BinaryScorer,
    ChunkF1Scorer,
    SpanScorer,
    cmrc_em,
    cmrc_f1,
    cmrc_segments,
    evaluate_predictions,
    extract_chunks,
    format_cmrc_result,
    load_cmrc_questions,
    roc_auc,
)

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURE = json.loads((REPO / "tests" / "fixtures" / "cmrc_eval_cases.json").read_text(encoding="utf-8"))
CASES = FIXTURE["cases"]


def _installed_nltk():
    import nltk

    return nltk.__version__


def _expected(case):
    """The official values for the installed nltk, or None where the fixture has none for it."""
    version = _installed_nltk()
    if version == FIXTURE["nltk_version"]:
        return case
    other = case.get("other_nltk", {})
    if version in other:
        return {**case, **other[version]}
    return None if case.get("other_nltk") else case


# --------------------------------------------------------------------------------------------------------------
# CMRC 2018 / DRCD: tricky cases scored by the official script offline


def test_sp_char_list_is_the_official_33_entries():
    assert len(CMRC_SP_CHAR) == 33 and len(set(CMRC_SP_CHAR)) == 33
    assert [c for c in CMRC_SP_CHAR if len(c) != 1] == ["……"]
    assert "…" not in CMRC_SP_CHAR and "." not in CMRC_SP_CHAR and "【" not in CMRC_SP_CHAR


def test_nltk_is_the_version_the_fixture_was_computed_with():
    # the nltk tokenizer's rules change between releases (3.10 splits em dashes and apostrophes differently),
    # so F1 on Latin runs depends on the version: keep the pin in setup.py and this fixture in step
    assert _installed_nltk() == FIXTURE["nltk_version"], (
        f"nltk {_installed_nltk()} is installed but the official numbers were computed with "
        f"nltk {FIXTURE['nltk_version']}; install the pinned version")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case_matches_official_script(case):
    expected = _expected(case)
    if expected is None:
        pytest.skip(f"no official value for nltk {_installed_nltk()} in this nltk-sensitive case")
    assert cmrc_segments(case["prediction"]) == expected["prediction_segments"]
    assert [cmrc_segments(a) for a in case["answers"]] == expected["answer_segments"]
    # bit-exact: the per-question float is formed by the same operations as the official calc_f1_score
    assert cmrc_f1(case["prediction"], case["answers"]) == 100.0 * expected["f1"]
    assert cmrc_em(case["prediction"], case["answers"]) == 100.0 * expected["em"]


def test_fixture_covers_the_tricky_behaviours():
    by_name = {c["name"]: c for c in CASES}
    assert len(CASES) >= 40
    # EM without F1: nothing left to segment once sp_char and whitespace are gone
    assert by_name["only sp_char on both sides: EM 1, F1 0"]["em"] == 1
    assert by_name["only sp_char on both sides: EM 1, F1 0"]["f1"] == 0
    # contiguous substring, not subsequence: [北 a 京] vs [北 京] shares only 1 segment
    assert by_name["contiguous, not subsequence, Latin between CJK"]["f1"] == pytest.approx(0.4)
    # sp_char is skipped without ending the run
    assert by_name["sp_char inside a Latin word joins it"]["prediction_segments"] == ["ωforce"]


def test_whole_case_set_reproduces_the_official_output_line():
    whole = FIXTURE["whole_set"]
    skipped = []
    scores = evaluate_predictions(whole["dataset"], whole["predictions"], on_skip=skipped.append)
    if _installed_nltk() == FIXTURE["nltk_version"]:
        assert scores["F1"] == whole["f1"] and scores["EM"] == whole["em"]
        assert json.dumps(format_cmrc_result(scores, "PREDICTIONS")) == whole["official_stdout"]
    assert (scores["TOTAL"], scores["SKIP"]) == (whole["total"], whole["skip"])
    assert skipped == ["Q_missing"]
    assert scores["AVERAGE"] == (scores["EM"] + scores["F1"]) * 0.5


def test_raw_cmrc_format_scores_like_squad_style():
    whole = FIXTURE["whole_set"]
    raw = [{"context_id": "C0", "context_text": "",
            "qas": [{"query_id": qa["id"], "query_text": qa["question"], "answers": [a["text"] for a in qa["answers"]]}
                    for qa in whole["dataset"]["data"][0]["paragraphs"][0]["qas"]]}]
    assert evaluate_predictions(raw, whole["predictions"]) == evaluate_predictions(whole["dataset"],
                                                                                    whole["predictions"])


def test_span_scorer_accumulates_batches_and_resets():
    whole = FIXTURE["whole_set"]
    scorer = SpanScorer.from_dataset(whole["dataset"])
    items = list(whole["predictions"].items())
    scorer.update(dict(items[:10]))
    scorer.update(dict(items[10:]))
    assert scorer.result() == evaluate_predictions(whole["dataset"], whole["predictions"])
    with pytest.raises(ValueError, match="already predicted"):
        scorer.update({items[0][0]: "x"})
    scorer.reset()
    assert scorer.result()["SKIP"] == scorer.result()["TOTAL"] == whole["total"]
    assert scorer.result()["F1"] == 0.0


@pytest.mark.parametrize("dataset, field", [
    ({"version": "1"}, "data"),
    ({"data": {"a": 1}}, "data"),
    ({"data": [{"paragraphs": [{"context": "x"}]}]}, "data[0].paragraphs[0].qas"),
    ({"data": [{"paragraphs": [{"qas": [{"id": 7, "answers": ["x"]}]}]}]}, "data[0].paragraphs[0].qas[0].id"),
    ({"data": [{"paragraphs": [{"qas": [{"id": "q", "answers": []}]}]}]}, "data[0].paragraphs[0].qas[0].answers"),
    ({"data": [{"paragraphs": [{"qas": [{"id": "q", "answers": [{"answer_start": 0}]}]}]}]},
     "data[0].paragraphs[0].qas[0].answers[0].text"),
    ({"data": [{"paragraphs": [{"qas": [{"id": "q", "answers": [None]}]}]}]}, "data[0].paragraphs[0].qas[0].answers[0]"),
    ([{"qas": [{"query_id": "q", "answers": [["x"]]}]}], "[0].qas[0].answers[0]"),
])
def test_bad_dataset_structure_names_the_field(dataset, field):
    with pytest.raises(DataError) as info:
        load_cmrc_questions(dataset, path="dev.json")
    assert info.value.field == field and "dev.json" in str(info.value)


def test_bad_predictions_name_file_and_question():
    dataset = {"data": [{"paragraphs": [{"qas": [{"id": "q1", "answers": ["北京"]}]}]}]}
    with pytest.raises(DataError, match="pred.json"):
        evaluate_predictions(dataset, ["北京"], predictions_path="pred.json")
    with pytest.raises(DataError) as info:
        evaluate_predictions(dataset, {"q1": None}, predictions_path="pred.json")
    assert info.value.field == "q1"
    with pytest.raises(DataError, match="no questions"):
        evaluate_predictions({"data": []}, {})
    # numbers are scored as their str(), as the official script does
    assert evaluate_predictions({"data": [{"paragraphs": [{"qas": [{"id": "q1", "answers": ["1998"]}]}]}]},
                                {"q1": 1998})["EM"] == 100.0


def test_cmrc_f1_rejects_a_bare_string_of_golds():
    with pytest.raises(ValueError):
        cmrc_f1("北京", "北京")  # a str would silently be read as golds "北", "京"


# --------------------------------------------------------------------------------------------------------------
# Properties


_TRICKY = list("北京大学一年的是abcXYZ019 \t\n\u3000\u00a0\u200b.,?!()\"'%…—〇ㄅ㐀𠀀鿏豈臺İ😀ひ서‘【】・〜") + list(
    "".join(c for c in CMRC_SP_CHAR if len(c) == 1))
texts = st.one_of(st.text(alphabet=st.sampled_from(_TRICKY), max_size=12), st.text(max_size=8))


def _has_content(text):
    """True when something other than sp_char and whitespace survives the official normalization."""
    return any(c not in CMRC_SP_CHAR and not c.isspace() for c in str(text).lower().strip())


@settings(max_examples=300, deadline=None)
@given(texts)
def test_prediction_equal_to_gold_scores_100_unless_nothing_is_left_to_segment(text):
    # The official F1 is 0 when either side has no segments, so a gold made only of sp_char/whitespace can
    # never get F1 credit, even from an identical prediction (its EM is still 100).
    assert cmrc_em(text, [text]) == 100.0
    assert cmrc_f1(text, [text]) == (100.0 if _has_content(text) else 0.0)
    assert (len(cmrc_segments(text)) > 0) == _has_content(text)


@settings(max_examples=300, deadline=None)
@given(texts, st.lists(texts, min_size=1, max_size=3))
def test_f1_em_bounds_symmetry_and_max_over_golds(prediction, golds):
    f1 = cmrc_f1(prediction, golds)
    em = cmrc_em(prediction, golds)
    assert 0.0 <= f1 <= 100.0 and em in (0.0, 100.0)
    assert f1 == max(cmrc_f1(prediction, [g]) for g in golds)
    assert cmrc_f1(prediction, golds[:1]) == cmrc_f1(golds[0], [prediction])  # P and R swap, F1 does not change
    if em == 100.0:
        # EM implies F1 = 100 unless the matching strings have nothing to segment
        assert f1 == 100.0 or not _has_content(prediction)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(_TRICKY), max_size=12), st.sampled_from([c for c in CMRC_SP_CHAR if len(c) == 1]),
       st.integers(min_value=0))
def test_sp_char_inside_the_text_changes_nothing(text, sp, where):
    # Not true for all Unicode, officially either: lower() runs before sp_char removal and lowercases a Greek Σ
    # to final ς when the next char is not a letter, so "ΑΣ-Β" != "ΑΣΒ" (a fixture case); _TRICKY has no Σ.
    core = text.strip()
    if len(core) < 2:
        return
    i = 1 + where % (len(core) - 1)  # strictly inside, so strip() sees the same ends
    noisy = core[:i] + sp + core[i:]
    assert cmrc_segments(noisy) == cmrc_segments(core)
    assert cmrc_em(noisy, [core]) == 100.0


# --------------------------------------------------------------------------------------------------------------
# Real dev sets: gold answers score 100, perturbed predictions score what the official script scored


def _shared_data_file(relative):
    candidates = [os.environ.get("PADDLE_ELECTRA_SHARED_DATA"), REPO.parent / "shared" / "data", "/work/shared/data"]
    for base in candidates:
        if base and (pathlib.Path(base) / relative).is_file():
            return pathlib.Path(base) / relative
    pytest.skip(f"{relative} not found under ../shared/data (real benchmark data is not part of the repository)")


def perturb_predictions(dataset):
    """Deterministic mix of right, partly right, wrong, empty and missing predictions for a SQuAD-style dataset."""
    predictions = {}
    index = 0
    for article in dataset["data"]:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                golds = [a["text"] for a in qa["answers"]]
                start = qa["answers"][0]["answer_start"]
                kind = index % 8
                index += 1
                if kind == 0:
                    continue  # unanswered
                predictions[qa["id"]] = [
                    None,
                    golds[0],
                    golds[0] + "的",
                    golds[0][1:],
                    context[max(0, start - 2):start + len(golds[0]) + 3],
                    "（ " + golds[-1].upper() + " ）",
                    "",
                    golds[0][::-1],
                ][kind]
    return predictions


DEV_SETS = sorted(FIXTURE["dev_perturbed"])


@pytest.mark.needs_shared_data
@pytest.mark.parametrize("relative", DEV_SETS)
def test_dev_set_gold_answers_score_100(relative):
    dataset = json.loads(_shared_data_file(relative).read_bytes())
    first_gold = {qid: golds[0] for qid, golds in load_cmrc_questions(dataset)}
    scores = evaluate_predictions(dataset, first_gold)
    assert scores == {"AVERAGE": 100.0, "F1": 100.0, "EM": 100.0, "TOTAL": FIXTURE["dev_perturbed"][relative]["total"],
                      "SKIP": 0}


@pytest.mark.needs_shared_data
@pytest.mark.parametrize("relative", DEV_SETS)
def test_dev_set_perturbed_predictions_score_as_official(relative):
    path = _shared_data_file(relative)
    expected = FIXTURE["dev_perturbed"][relative]
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != expected["sha256"]:
        pytest.skip(f"{path} is not the file the official numbers were computed on (sha256 differs)")
    expected = _expected(expected)
    if expected is None:
        pytest.skip(f"no official value for nltk {_installed_nltk()}")
    scores = evaluate_predictions(json.loads(raw), perturb_predictions(json.loads(raw)))
    assert (scores["F1"], scores["EM"], scores["TOTAL"], scores["SKIP"]) == (
        expected["f1"], expected["em"], expected["total"], expected["skip"])
    assert json.dumps(format_cmrc_result(scores, "PREDICTIONS")) == expected["official_stdout"]


# --------------------------------------------------------------------------------------------------------------
# CLI


def _load_cli():
    spec = importlib.util.spec_from_file_location("finetune_evaluate", REPO / "finetune" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_case_set(tmp_path):
    whole = FIXTURE["whole_set"]
    data, pred = tmp_path / "data.json", tmp_path / "pred.json"
    data.write_text(json.dumps(whole["dataset"], ensure_ascii=False), encoding="utf-8")
    pred.write_text(json.dumps(whole["predictions"], ensure_ascii=False), encoding="utf-8")
    return data, pred


def test_cli_as_a_script_prints_the_official_line(tmp_path):
    data, pred = _write_case_set(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(REPO / "finetune" / "evaluate.py"), str(data), str(pred)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert list(line) == ["AVERAGE", "F1", "EM", "TOTAL", "SKIP", "FILE"] and line["FILE"] == str(pred)
    if _installed_nltk() == FIXTURE["nltk_version"]:
        assert done.stdout.strip() == FIXTURE["whole_set"]["official_stdout"].replace(
            '"PREDICTIONS"', json.dumps(str(pred)))
    assert done.stderr == "Unanswered question: Q_missing\n"


def test_cli_as_a_script_bad_input_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    missing = tmp_path / "missing.json"
    done = subprocess.run([sys.executable, str(REPO / "finetune" / "evaluate.py"), str(missing), str(missing)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and str(missing) in done.stderr and "not found" in done.stderr


@pytest.mark.parametrize("data_text, pred_text, where", [
    ('{"data": [', "{}", ("data.json", "line 1", "invalid JSON")),
    ('{"data": [{"paragraphs": [{"qas": [{"id": "q", "answers": []}]}]}]}', "{}",
     ("data.json", "data[0].paragraphs[0].qas[0].answers", "non-empty")),
    ('{"data": [{"paragraphs": [{"qas": [{"id": "q", "answers": ["a"]}]}]}]}', '["a"]', ("pred.json", "JSON object")),
    ('{"data": [{"paragraphs": [{"qas": [{"id": "q", "answers": ["a"]}]}]}]}', '{"q": {"text": "a"}}',
     ("pred.json", "'q'", "string")),
    ('{"data": [{"paragraphs": [{"qas": [{"id": "q", "answers": ["a"]}]}]}]}', '{\n"q": "a",\n}',
     ("pred.json", "line 3", "invalid JSON")),
])
def test_cli_bad_input(tmp_path, capsys, data_text, pred_text, where):
    data, pred = tmp_path / "data.json", tmp_path / "pred.json"
    data.write_text(data_text, encoding="utf-8")
    pred.write_text(pred_text, encoding="utf-8")
    assert _load_cli().main([str(data), str(pred)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1
    for word in where:
        assert word in err


def test_cli_reads_utf8_with_bom_and_raw_format(tmp_path, capsys):
    data, pred = tmp_path / "data.json", tmp_path / "pred.json"
    data.write_bytes(b"\xef\xbb\xbf" + json.dumps(
        [{"context_id": "c", "context_text": "", "qas": [{"query_id": "q", "answers": ["北京大学"]}]}],
        ensure_ascii=False).encode("utf-8"))
    pred.write_text('{"q": "北京 大学"}', encoding="utf-8")
    assert _load_cli().main([str(data), str(pred)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["EM"], out["F1"], out["AVERAGE"], out["TOTAL"], out["SKIP"]) == ("0.000", "100.000", "50.000", 1, 0)


# --------------------------------------------------------------------------------------------------------------
# AccuracyScorer


def test_accuracy_scorer_ids_logits_and_loss():
    scorer = AccuracyScorer()
    scorer.update([1, 0, 2, 2], [1, 1, 2, 0], loss=0.5)  # batch-mean loss stands for 4 examples
    logits = np.array([[0.1, 0.9, 0.0], [2.0, 0.0, 0.0]])
    scorer.update(logits, np.array([1, 2]), loss=np.array([1.0, 2.0]))
    out = scorer.result()
    assert out["accuracy"] == pytest.approx(100.0 * 3 / 6) and out["count"] == 6
    assert out["loss"] == pytest.approx((0.5 * 4 + 1.0 + 2.0) / 6)
    scorer.reset()
    with pytest.raises(ValueError, match="before any example"):
        scorer.result()
    scorer.update([0], [0])
    assert scorer.result() == {"accuracy": 100.0, "count": 1}
    with pytest.raises(ValueError, match="shape"):
        scorer.update([0, 1], [0])
    with pytest.raises(ValueError, match="3 values"):
        scorer.update([0, 1], [0, 1], loss=[1.0, 2.0, 3.0])


def test_accuracy_scorer_takes_paddle_tensors():
    paddle = reference("paddle")
    scorer = AccuracyScorer()
    scorer.update(paddle.to_tensor([[0.2, 0.8], [0.7, 0.3], [0.1, 0.9]]), paddle.to_tensor([1, 1, 1]),
                  loss=paddle.to_tensor(0.25))
    assert scorer.result() == {"accuracy": pytest.approx(200.0 / 3), "count": 3, "loss": pytest.approx(0.25)}


# --------------------------------------------------------------------------------------------------------------
# ChunkF1Scorer


def test_extract_chunks_bio_bioes_and_ill_formed():
    assert extract_chunks(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 2), ("LOC", 3, 4)]
    assert extract_chunks(["S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]) == [("PER", 0, 1), ("LOC", 1, 4),
                                                                            ("LOC", 4, 5)]
    # conlleval reading of ill-formed tags: I- after O starts a chunk, a type change splits, B- after B- splits
    assert extract_chunks(["O", "I-PER", "I-PER"]) == [("PER", 1, 3)]
    assert extract_chunks(["B-PER", "I-LOC"]) == [("PER", 0, 1), ("LOC", 1, 2)]
    assert extract_chunks(["B-PER", "B-PER"]) == [("PER", 0, 1), ("PER", 1, 2)]
    assert extract_chunks(["E-PER", "I-PER"]) == [("PER", 0, 1), ("PER", 1, 2)]
    assert extract_chunks([]) == []
    with pytest.raises(DataError) as info:
        extract_chunks(["O", "PER"], where="labels[3]")
    assert info.value.field == "labels[3][1]"


def test_chunk_f1_hand_computed():
    scorer = ChunkF1Scorer()
    scorer.update([["B-PER", "I-PER", "O", "B-ORG"], ["B-LOC", "O"]],
                  [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "I-LOC"]])
    out = scorer.result()
    # gold: PER(0,2) LOC(3,4) | LOC(0,2); predicted: PER(0,2) ORG(3,4) | LOC(0,1); only PER is exact
    assert (out["correct"], out["predicted"], out["gold"]) == (1, 3, 3)
    assert out["precision"] == pytest.approx(100 / 3) and out["recall"] == pytest.approx(100 / 3)
    assert out["f1"] == pytest.approx(100 / 3)
    assert out["per_type"]["PER"] == {"precision": 100.0, "recall": 100.0, "f1": 100.0, "support": 1}
    assert out["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert out["per_type"]["LOC"]["support"] == 2 and out["per_type"]["LOC"]["recall"] == 0.0


def test_chunk_f1_ids_with_ignored_subword_positions():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    gold = np.array([[1, -100, 2, 0, -100], [3, 4, -100, -100, -100]])
    predicted = np.array([[1, 0, 2, 0, 3], [3, 0, 4, 4, 4]])  # values at ignored positions must not matter
    scorer = ChunkF1Scorer(label_list=labels)
    scorer.update(predicted, gold)
    out = scorer.result()
    # sentence 1: gold PER(0,2) == predicted PER(0,2); sentence 2: gold LOC(0,2), predicted LOC(0,1)
    assert (out["correct"], out["predicted"], out["gold"]) == (1, 2, 2)
    with pytest.raises(DataError, match="outside the label list"):
        scorer.update([[7]], [[1]])


def test_chunk_f1_matches_seqeval_on_random_sequences():
    seqeval = reference("seqeval.metrics")
    rng = np.random.default_rng(0)
    tags = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
    for trial in range(30):
        pool = tags if trial % 2 else ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
        gold = [list(rng.choice(pool, size=rng.integers(0, 12))) for _ in range(8)]
        predicted = [[t if rng.random() < 0.7 else str(rng.choice(pool)) for t in sentence] for sentence in gold]
        scorer = ChunkF1Scorer()
        scorer.update(predicted, gold)
        out = scorer.result()
        assert out["f1"] == pytest.approx(100 * seqeval.f1_score(gold, predicted, zero_division=0))
        assert out["precision"] == pytest.approx(100 * seqeval.precision_score(gold, predicted, zero_division=0))
        assert out["recall"] == pytest.approx(100 * seqeval.recall_score(gold, predicted, zero_division=0))


# --------------------------------------------------------------------------------------------------------------
# BinaryScorer


def _auc_by_pairs(scores, labels):
    """Probability a random positive outscores a random negative, ties counting one half (brute force)."""
    positives = [s for s, y in zip(scores, labels) if y]
    negatives = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives))
    return wins / (len(positives) * len(negatives))


def test_roc_auc_exact_with_ties():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert roc_auc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5
    assert roc_auc([3, 2, 1], [1, 0, 0]) == 1.0 and roc_auc([3, 2, 1], [0, 1, 1]) == 0.0
    assert roc_auc([1, 2], [1, 1]) is None
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([np.nan, 1.0], [0, 1])
    rng = np.random.default_rng(1)
    for _ in range(20):
        scores = rng.integers(-3, 4, size=60).astype(np.float32)  # many ties
        labels = rng.random(60) < 0.3
        if labels.all() or not labels.any():
            continue
        assert roc_auc(scores, labels) == pytest.approx(_auc_by_pairs(scores.tolist(), labels.tolist()), abs=1e-12)


def test_roc_auc_matches_sklearn():
    sklearn_metrics = reference("sklearn.metrics")
    rng = np.random.default_rng(2)
    scores = np.round(rng.normal(size=5000), 2)
    labels = rng.random(5000) < 0.15
    assert roc_auc(scores, labels) == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12)


def test_binary_scorer_masked_batches():
    scorer = BinaryScorer()
    logits = np.array([[2.0, -1.0, 0.5, 9.0], [-3.0, 0.0, 1.0, 9.0]])
    labels = np.array([[1, 0, 0, 1], [0, 1, 1, 0]])
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 0]])  # the last column is padding and must be ignored
    scorer.update(logits, labels, mask=mask, loss=0.3)
    out = scorer.result()
    # kept: logits [2,-1,.5,-3,0,1] labels [1,0,0,0,1,1]; predicted (>0) [1,0,1,0,0,1] (0.0 is not > 0)
    assert out["count"] == 6 and out["positives"] == 3
    assert out["accuracy"] == pytest.approx(100 * 4 / 6)
    assert out["precision"] == pytest.approx(100 * 2 / 3) and out["recall"] == pytest.approx(100 * 2 / 3)
    assert out["auc"] == pytest.approx(_auc_by_pairs([2, -1, .5, -3, 0, 1], [1, 0, 0, 0, 1, 1]))
    assert out["loss"] == pytest.approx(0.3)
    scorer.update(np.array([-5.0]), np.array([0]))  # batches accumulate
    assert scorer.result()["count"] == 7
    scorer.reset()
    with pytest.raises(ValueError, match="before any"):
        scorer.result()
    scorer.update([-1.0, -2.0], [0, 0])
    assert scorer.result()["auc"] is None and scorer.result()["precision"] == 0.0
    with pytest.raises(ValueError, match="0 \\(original\\) or 1"):
        scorer.update([1.0], [2])
