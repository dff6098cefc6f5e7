"""Property-based tests (hypothesis) of every reader that takes files from users.

Contract, for any input: the reader succeeds with output that satisfies its invariants, or raises the project's own
error type (paddle_electra.errors.ElectraError) whose message names the file (and line/field where there is one),
or skips the input and counts it where the documented policy says so. Never another exception from deep inside,
never a hang (a hard SIGALRM deadline of 20 s per example), never a partial output left behind.

Readers covered: the pretraining data builder (pretrain/data.py), the fine-tuning readers (TSV/CSV classification,
CAIL JSON lines, SQuAD JSON), the converters' TF index reader (CRC-correct structured fuzzing and raw byte flips),
safetensors headers (paddle_electra/weights.py), HF config.json through `converters.hf.from_hf`, and
ElectraConfig.from_dict. Example counts are printed at the end of the module (run with -s) and asserted to be at
least the intended minimum.
"""
import collections
import contextlib
import csv
import io
import json
import math
import os
import re
import shutil
import random
import signal
import struct
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from conftest import TF_PREFIX, varint, write_leveldb_table
from hypothesis import HealthCheck, example, given, settings, strategies as st

import paddle_electra  # noqa: F401  (environment before paddle)
from paddle_electra.errors import ConfigError, DataError, ElectraError, WeightsError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIED = collections.Counter()
OUTCOMES = collections.defaultdict(collections.Counter)
MINIMUM = {}
# hypothesis' own deadline is off: a first example that pays for an import would make it report a flaky test; the
# per-example SIGALRM deadline (hard_deadline) is what catches a hang.
# The default run is derandomized: the same ~2,000 inputs every time, so a failure is always reproducible. The slow
# test_randomized_pass at the end runs this module once more with a fresh seed (RANDOM_PASS_ENV=1 and pytest's
# --hypothesis-seed), printed so that a failure can be replayed.
RANDOM_PASS_ENV = "PADDLE_ELECTRA_PROPERTY_RANDOM"
COMMON = dict(deadline=None, derandomize=os.environ.get(RANDOM_PASS_ENV) != "1", database=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])


class Hang(BaseException):
    """Raised by the hard per-example deadline (BaseException: no reader may swallow it)."""


@contextlib.contextmanager
def hard_deadline(seconds=20.0):
    def alarm(signum, frame):
        raise Hang(f"no result after {seconds} s")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def tried(test, outcome, minimum):
    TRIED[test] += 1
    OUTCOMES[test][outcome] += 1
    MINIMUM[test] = minimum


def outcome_of(err):
    """A short label for the report: the error class and the start of its message without paths and numbers."""
    message = re.sub(r"(/[^\s:,'\"]+)+", "PATH", str(err))
    message = re.sub(r"\d+", "N", message)
    return f"{type(err).__name__}: {message[:70]}"


def call(fn, *args, **kwargs):
    """(result, None) or (None, error) for ElectraError; anything else (a raw exception) propagates."""
    with hard_deadline():
        try:
            return fn(*args, **kwargs), None
        except ElectraError as err:
            return None, err


def names(err, *paths):
    """The error message names one of the paths (the full path, as the user gave it)."""
    return any(str(p) in str(err) for p in paths)


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    lines = ["", "property-based tests: generated cases per test"]
    for test in sorted(TRIED):
        outcomes = ", ".join(f"{n} {k}" for k, n in OUTCOMES[test].most_common(8))
        lines.append(f"  {test:34s} {TRIED[test]:5d}   {outcomes}")
    print("\n".join(lines))


def test_zz_enough_cases_were_generated():
    """Runs last in this file: each property above ran at least the planned number of generated cases."""
    short = {t: (TRIED[t], MINIMUM[t]) for t in MINIMUM if TRIED[t] < MINIMUM[t]}
    assert not short, short


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 64), st.floats(allow_nan=True),
                         st.text(max_size=12))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                 st.dictionaries(st.text(max_size=6), inner,
                                                                                 max_size=3)), max_leaves=6)
CJK = [chr(c) for c in range(0x4E00, 0x4E00 + 60)]


# =====================================================================================================================
# 1. The pretraining data builder
# =====================================================================================================================
MAX_LINE = 64


@pytest.fixture(scope="module")
def pretrain_vocab(tmp_path_factory):
    from paddle_electra.tokenizer import SPECIAL_TOKENS
    path = tmp_path_factory.mktemp("prop-vocab") / "vocab.txt"
    path.write_text("\n".join(list(SPECIAL_TOKENS) + CJK + ["。", "a", "b", "##a", "##b"]) + "\n", encoding="utf-8")
    return str(path)


LINES = st.one_of(
    st.text(max_size=40).map(lambda s: s.replace("\n", " ").encode("utf-8")),  # any Unicode
    st.text(st.sampled_from(CJK + ["。", " "]), min_size=1, max_size=30).map(lambda s: s.encode("utf-8")),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),  # mostly invalid UTF-8
    st.just(b""),  # a blank line: a document boundary
    st.just(b" \t\r"),
    st.integers(MAX_LINE + 1, 4 * MAX_LINE).map(lambda n: "长".encode("utf-8") * (n // 3 + 1)),  # over max_line_bytes
    st.just("\ufeff开始。".encode("utf-8")),  # a BOM (accepted on a file's first line only)
)
FILES = st.lists(st.tuples(st.lists(LINES, max_size=10), st.booleans()), min_size=1, max_size=3)


def expected_bad_input(contents):
    """The builder's documented skip counts, computed independently: per line (split at b'\\n' as readline does),
    over max_line_bytes -> overlong_line, else not UTF-8 -> undecodable_line; a file without any text (after
    stripping whitespace and a first-line BOM) -> empty_file. Also returns the first problem (file, line)."""
    counts, first = collections.Counter(), None
    for index, content in enumerate(contents):
        lines = content.split(b"\n")
        if content.endswith(b"\n") or not content:
            lines = lines[:-1]
        has_text = False
        for number, raw in enumerate(lines, 1):
            if len(raw) > MAX_LINE:
                kind = "overlong_line"
            else:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    kind = "undecodable_line"
                else:
                    if number == 1:
                        text = text.lstrip("\ufeff")
                    has_text = has_text or bool(text.strip())
                    continue
            counts[kind] += 1
            first = first or (index, number)
        if not has_text:
            counts["empty_file"] += 1
            first = first or (index, None)
    return dict(counts), first


@settings(max_examples=150, **COMMON)
@given(files=FILES, policy=st.sampled_from(["skip", "skip", "fail"]))
@example(files=[([], False)], policy="skip")  # an empty file alone
@example(files=[([b"\xff\xfe", "好。".encode()], True)], policy="fail")
@example(files=[(["长".encode() * 40, "好。".encode()], True)], policy="skip")
def test_pretraining_data_builder(pretrain_vocab, files, policy):
    from pretrain.data import BuildOptions, build_dataset
    from pretrain.dataset import PretrainingDataset
    with tempfile.TemporaryDirectory() as root:
        paths, contents = [], []
        for i, (lines, trailing_newline) in enumerate(files):
            content = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
            path = os.path.join(root, f"in-{i}.txt")
            with open(path, "wb") as f:
                f.write(content)
            paths.append(path)
            contents.append(content)
        expected, first = expected_bad_input(contents)
        out = os.path.join(root, "out")
        options = BuildOptions(max_seq_length=16, max_line_bytes=MAX_LINE, chunk_chars=40, on_bad_input=policy)
        index, err = call(build_dataset, paths, out, vocab=pretrain_vocab, options=options, num_workers=0,
                          progress=False)
        leftovers = [n for n in os.listdir(root) if n.startswith((".tmp-out-", ".old-out-"))]
        assert not leftovers, leftovers  # no staging folder survives, success or not
        if err is not None:
            tried("pretrain data builder", outcome_of(err), 150)
            assert isinstance(err, DataError), err
            assert not os.path.exists(out)
            if policy == "fail" and expected:
                path_index, line = first
                assert names(err, paths[path_index]) and (line is None or f"line {line}" in str(err)), (err, first)
            else:  # nothing was bad, or bad input was skipped, yet no example came out: the inputs are named
                assert "no examples" in str(err) and names(err, *paths), err
            return
        tried("pretrain data builder", f"built ({'with' if expected else 'no'} skips)", 150)
        assert policy == "skip" or not expected
        assert index["bad_input"]["counts"] == expected
        assert sorted(os.listdir(out)) == sorted(
            ["index.json", "manifest.json", "vocab.txt", "tokenizer_config.json", "token_counts.npy"]
            + [s[k] for s in index["shards"] for k in ("tokens", "examples")])
        data = PretrainingDataset(out)
        tokenizer = data.tokenizer()
        assert len(data) == index["num_examples"] > 0
        for i in range(len(data)):
            ids, a_length = data.example(i)
            assert 2 <= len(ids) <= 16 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
            assert ids[a_length - 1] == tokenizer.sep_token_id


# =====================================================================================================================
# 2. The fine-tuning readers
# =====================================================================================================================
FIELD_TEXT = st.one_of(st.text(max_size=12), st.text(st.sampled_from(CJK + [" ", "\t", '"', ",", "\r"]), max_size=8),
                       st.sampled_from(["0", "1", "2", "entailment", "neutral", "contradiction", "contradictory",
                                        "zh", "en", "", " 1 ", "label", "text_a"]))
HEADER_NAMES = ["label", "text_a", "text_b", "sentence1", "sentence2", "premise", "hypo", "gold_label", "language",
                "text", "query", "title", "Label", " text_a "]
ENCODINGS = st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "gb18030", "utf-16", "latin-1", "bytes"])


def encode(text, encoding, raw):
    if encoding == "bytes":
        return raw
    return text.encode(encoding, errors="replace")


VALID_HEADERS = {"chnsenticorp": ["label", "text_a"], "lcqmc": ["text_a", "text_b", "label"],
                 "bqcorpus": ["sentence1", "sentence2", "label"], "xnli": ["language", "gold_label", "sentence1",
                                                                          "sentence2"]}


@st.composite
def delimited_files(draw, task_name):
    header = draw(st.one_of(st.just(VALID_HEADERS[task_name]), st.just(VALID_HEADERS[task_name]),
                            st.permutations(VALID_HEADERS[task_name]).map(list),
                            st.lists(st.sampled_from(HEADER_NAMES), min_size=1, max_size=5),
                            st.lists(FIELD_TEXT, max_size=4)))
    width = draw(st.one_of(st.just(len(header)), st.integers(1, 5)))
    from finetune.tasks import get_task
    labels = list(get_task(task_name).labels)

    def cell(name):  # a plausible value for the column
        return {"label": st.sampled_from(labels), "gold_label": st.sampled_from(labels),
                "language": st.sampled_from(["zh", "zh", "en"])}.get(name, st.text(st.sampled_from(CJK + [" "]),
                                                                                   min_size=1, max_size=6))

    plausible = st.tuples(*[cell(h) for h in header]).map(list)
    row = st.one_of(plausible, plausible, plausible, plausible,
                    st.lists(FIELD_TEXT, min_size=max(0, width - 1), max_size=width + 1))
    rows = draw(st.lists(row, min_size=1, max_size=8))
    ext = draw(st.sampled_from(["tsv", "csv"]))
    if ext == "csv" and draw(st.booleans()):  # proper CSV quoting
        buffer = io.StringIO()
        csv.writer(buffer).writerows([header] + rows)
        text = buffer.getvalue()
    else:  # joined by hand: quotes, tabs and commas inside fields stay unescaped
        sep = draw(st.sampled_from(["\t", "\t", ","] if ext == "tsv" else [",", ",", "\t"]))
        text = "\n".join(sep.join(r) for r in [header] + rows) + draw(st.sampled_from(["", "\n", "\r\n"]))
    return ext, text, draw(ENCODINGS), draw(st.binary(max_size=60))


CLASSIFICATION_TASKS = ["chnsenticorp", "lcqmc", "bqcorpus", "xnli"]


def check_read(task, path, reader_name, minimum):
    """Run task.read(path): examples that satisfy the kind's invariants, or a DataError naming the file."""
    result, err = call(task.read, path)
    if err is not None:
        tried(reader_name, outcome_of(err), minimum)
        assert isinstance(err, DataError) and names(err, path), err
        return None
    examples, stats = result
    tried(reader_name, "read" if examples else "read, no examples", minimum)
    assert stats.read == len(examples) + sum(stats.skipped.values()), stats
    return examples


@settings(max_examples=200, **COMMON)
@given(task_name=st.shared(st.sampled_from(CLASSIFICATION_TASKS), key="task"),
       file=st.shared(st.sampled_from(CLASSIFICATION_TASKS), key="task").flatmap(delimited_files))
@example(task_name="chnsenticorp", file=("tsv", "label\ttext_a\n2\t好\n", "utf-8", b""))  # label outside the set
@example(task_name="lcqmc", file=("csv", 'text_a,text_b,label\n"unterminated,x,1\n', "utf-8", b""))
@example(task_name="xnli", file=("tsv", "", "bytes", b"\xff\xfe\x00\xd8"))
def test_classification_readers(task_name, file):
    from finetune.tasks import get_task
    ext, text, encoding, raw = file
    task = get_task(task_name)
    with tempfile.TemporaryDirectory() as root:
        path = os.path.join(root, f"train.{ext}")
        with open(path, "wb") as f:
            f.write(encode(text, encoding, raw))
        examples = check_read(task, path, "finetune TSV/CSV readers", 200)
        for e in examples or ():
            assert e.text_a and e.text_a == e.text_a.strip()
            assert (e.text_b is None) == (task.text_b_names is None) and (e.text_b is None or e.text_b.strip())
            assert e.label is None or e.label in task.labels
            assert e.guid.startswith(path + ":")


CASE = st.fixed_dictionaries({}, optional={
    "fact": st.one_of(st.text(st.sampled_from(CJK + [" "]), max_size=10), JSON_VALUES),
    "meta": st.one_of(st.fixed_dictionaries({}, optional={"accusation": st.one_of(
        st.lists(st.sampled_from(["盗窃", "[走私、贩卖]毒品", "", " 诈骗 "]), max_size=3), JSON_VALUES)}), JSON_VALUES)})
CAIL_LINES = st.lists(st.one_of(CASE.map(lambda c: json.dumps(c, ensure_ascii=False)), JSON_VALUES.map(json.dumps),
                                st.text(max_size=10), st.just("")), max_size=6)


@settings(max_examples=150, **COMMON)
@given(lines=CAIL_LINES, encoding=ENCODINGS, raw=st.binary(max_size=40))
@example(lines=['{"fact": "案", "meta": {"accusation": ["盗窃"]}}', '{"fact": 3}'], encoding="utf-8", raw=b"")
def test_cail2018_json_lines_reader(lines, encoding, raw):
    from finetune.tasks import get_task
    task = get_task("cail2018")
    with tempfile.TemporaryDirectory() as root:
        path = os.path.join(root, "data_train.json")
        with open(path, "wb") as f:
            f.write(encode("\n".join(lines), encoding, raw))
        for e in check_read(task, path, "finetune CAIL JSON-lines reader", 150) or ():
            assert e.text_a and isinstance(e.label, str) and "[" not in e.label


ANSWER = st.one_of(st.fixed_dictionaries({"text": st.one_of(st.sampled_from(["北京", "长江", "", "x"]), JSON_VALUES),
                                          "answer_start": st.one_of(st.integers(-5, 40), JSON_VALUES)}), JSON_VALUES)
QA = st.one_of(st.fixed_dictionaries({"id": st.one_of(st.sampled_from(["q1", "q2", "q3"]), JSON_VALUES),
                                      "question": st.one_of(st.sampled_from(["哪里？", "", "  "]), JSON_VALUES)},
                                     optional={"answers": st.one_of(st.lists(ANSWER, max_size=2), JSON_VALUES)}),
               JSON_VALUES)
PARAGRAPH = st.one_of(st.fixed_dictionaries({"context": st.one_of(st.sampled_from(["北京和长江", "", "北京北京"]),
                                                                  JSON_VALUES),
                                             "qas": st.one_of(st.lists(QA, max_size=3), JSON_VALUES)}), JSON_VALUES)
SQUAD = st.one_of(st.fixed_dictionaries({"data": st.one_of(st.lists(st.one_of(
    st.fixed_dictionaries({"paragraphs": st.one_of(st.lists(PARAGRAPH, max_size=2), JSON_VALUES)}), JSON_VALUES),
    max_size=2), JSON_VALUES)}, optional={"version": JSON_VALUES}), JSON_VALUES)


@settings(max_examples=200, **COMMON)
@given(document=SQUAD, broken=st.sampled_from(["", "", "", "truncate", "bytes"]), raw=st.binary(max_size=40))
@example(document={"data": [{"paragraphs": [{"context": "北京和长江", "qas": [
    {"id": "q1", "question": "哪里？", "answers": [{"text": "长江", "answer_start": True}]}]}]}]}, broken="", raw=b"")
def test_squad_json_reader(document, broken, raw):
    from finetune.tasks import get_task
    task = get_task("cmrc2018")
    text = json.dumps(document, ensure_ascii=False)
    data = text.encode("utf-8")
    if broken == "truncate":
        data = data[: len(data) // 2]
    elif broken == "bytes":
        data = raw
    with tempfile.TemporaryDirectory() as root:
        path = os.path.join(root, "train.json")
        with open(path, "wb") as f:
            f.write(data)
        for e in check_read(task, path, "finetune SQuAD JSON reader", 200) or ():
            assert e.question and e.context.strip()
            assert e.answer_start is None or e.context.startswith(e.answers[0], e.answer_start)


# =====================================================================================================================
# 3. The converters' format readers
# =====================================================================================================================


def _field(number, wire, value):
    tag = varint((number << 3) | wire)
    if wire == 0:
        return tag + varint(value)
    if wire == 1:
        return tag + struct.pack("<Q", value & (2 ** 64 - 1))
    if wire == 5:
        return tag + struct.pack("<I", value & (2 ** 32 - 1))
    return tag + varint(len(value)) + value


PROTO_FIELD = st.one_of(
    st.tuples(st.integers(1, 8), st.just(0), st.integers(0, 2 ** 64 - 1)),
    st.tuples(st.integers(1, 8), st.just(2), st.binary(max_size=12)),
    st.tuples(st.integers(1, 8), st.sampled_from([1, 5]), st.integers(0, 2 ** 64 - 1)),
).map(lambda f: _field(*f))
ENTRY_MUTATION = st.one_of(
    st.tuples(st.just("append"), st.lists(PROTO_FIELD, min_size=1, max_size=3)),  # later fields override
    st.tuples(st.just("replace"), st.lists(PROTO_FIELD, max_size=4)),
    st.tuples(st.just("flip"), st.integers(0, 10 ** 6), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10 ** 6)),
    st.tuples(st.just("key"), st.binary(min_size=1, max_size=6)),
    st.tuples(st.just("drop")),
)


def _mutate(items, position, mutation):
    items = list(items)
    i = position % len(items)
    key, value = items[i]
    kind = mutation[0]
    if kind == "append":
        value = value + b"".join(mutation[1])
    elif kind == "replace":
        value = b"".join(mutation[1])
    elif kind == "flip" and value:
        j = mutation[1] % len(value)
        value = value[:j] + bytes([value[j] ^ mutation[2]]) + value[j + 1:]
    elif kind == "truncate":
        value = value[: mutation[1] % (len(value) + 1)]
    elif kind == "key":
        key = mutation[1]
    elif kind == "drop":
        del items[i]
        return items
    items[i] = (key, value)
    return sorted(items) if kind == "key" else items


@pytest.fixture(scope="module")
def tf_items():
    from converters import tf_checkpoint as tfc
    return list(tfc._read_table(TF_PREFIX + ".index"))


@settings(max_examples=250, **COMMON)
@given(mutations=st.lists(st.tuples(st.integers(0, 200), ENTRY_MUTATION), min_size=1, max_size=3))
@example(mutations=[(0, ("append", [_field(1, 2, b"\x01")]))])  # header field 1 (num_shards) as bytes
@example(mutations=[(1, ("append", [_field(3, 2, b"x")]))])  # an entry's shard_id as bytes
@example(mutations=[(1, ("append", [_field(6, 0, 5)]))])  # an entry's crc32c as a varint
@example(mutations=[(1, ("append", [_field(2, 0, 7)]))])  # an entry's shape as a varint
def test_tf_index_entries_fuzzed(tf_items, mutations):
    from converters import tf_checkpoint as tfc
    items = tf_items
    for position, mutation in mutations:
        if items:
            items = _mutate(items, position, mutation)
    with tempfile.TemporaryDirectory() as root:
        prefix = os.path.join(root, "electra_small")
        write_leveldb_table(prefix + ".index", items)
        shutil.copy(TF_PREFIX + ".data-00000-of-00001", prefix + ".data-00000-of-00001")
        listed, err = call(tfc.list_variables, prefix)
        if err is None:
            tensors, err = call(tfc.read_checkpoint, prefix)
        if err is not None:
            tried("TF index entries (CRC-correct)", outcome_of(err), 250)
            assert isinstance(err, WeightsError) and names(err, prefix + ".index", prefix + ".data-"), err
            return
        tried("TF index entries (CRC-correct)", "read", 250)
        assert set(tensors) == set(listed)
        for name, array in tensors.items():
            assert tuple(array.shape) == tuple(listed[name][1])


@settings(max_examples=150, **COMMON)
@given(flips=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(1, 255)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 10 ** 6)))
def test_tf_index_bytes_fuzzed(flips, cut):
    from converters import tf_checkpoint as tfc
    data = bytearray(open(TF_PREFIX + ".index", "rb").read())
    for position, mask in flips:
        data[position % len(data)] ^= mask
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    with tempfile.TemporaryDirectory() as root:
        prefix = os.path.join(root, "electra_small")
        with open(prefix + ".index", "wb") as f:
            f.write(bytes(data))
        shutil.copy(TF_PREFIX + ".data-00000-of-00001", prefix + ".data-00000-of-00001")
        tensors, err = call(tfc.read_checkpoint, prefix)
        tried("TF index raw bytes", outcome_of(err) if err else "read", 150)
        if err is not None:
            assert isinstance(err, WeightsError) and names(err, prefix + ".index", prefix + ".data-"), err


SAFETENSORS_DTYPES = ["F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL", "U16", "U32", "U64",
                      "F8_E4M3"]
TENSOR_INFO = st.one_of(st.fixed_dictionaries({}, optional={
    "dtype": st.one_of(st.sampled_from(SAFETENSORS_DTYPES), JSON_VALUES),
    "shape": st.one_of(st.lists(st.integers(-2, 5), max_size=3), JSON_VALUES),
    "data_offsets": st.one_of(st.lists(st.integers(-2, 80), max_size=3), JSON_VALUES)}), JSON_VALUES)
METADATA = st.one_of(st.dictionaries(st.sampled_from(["format", "paddle_electra_sha256", "x"]),
                                     st.one_of(st.text(max_size=8), JSON_VALUES), max_size=3), JSON_VALUES)


@st.composite
def safetensors_files(draw):
    header = draw(st.dictionaries(st.text(max_size=6), TENSOR_INFO, max_size=3))
    if draw(st.booleans()):
        header["__metadata__"] = draw(METADATA)
    body = json.dumps(header).encode("utf-8") if draw(st.integers(0, 9)) else draw(st.binary(max_size=40))
    length = draw(st.one_of(st.just(len(body)), st.integers(0, 2 ** 64 - 1), st.integers(0, 200)))
    return struct.pack("<Q", length) + body + draw(st.binary(max_size=80))


@pytest.fixture(scope="module")
def valid_safetensors(tmp_path_factory):
    from paddle_electra.weights import save_safetensors
    path = tmp_path_factory.mktemp("prop-st") / "model.safetensors"
    save_safetensors({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4, np.int64)}, path)
    return path.read_bytes()


@settings(max_examples=300, **COMMON)
@given(data=st.one_of(safetensors_files(), st.binary(max_size=64)), mutate_valid=st.booleans(),
       flip=st.tuples(st.integers(0, 10 ** 6), st.integers(1, 255)))
@example(data=struct.pack("<Q", 2 ** 63) + b"{}", mutate_valid=False, flip=(0, 1))  # absurd header length
def test_safetensors_header_fuzzed(valid_safetensors, data, mutate_valid, flip):
    from paddle_electra.weights import load_safetensors
    if mutate_valid:  # one flipped byte of a valid file with a checksum (header, data or length)
        data = bytearray(valid_safetensors)
        data[flip[0] % len(data)] ^= flip[1]
        data = bytes(data)
    with tempfile.TemporaryDirectory() as root:
        path = os.path.join(root, "model.safetensors")
        with open(path, "wb") as f:
            f.write(data)
        tensors, err = call(load_safetensors, path)
        tried("safetensors files", outcome_of(err) if err else "loaded", 300)
        if err is not None:
            assert isinstance(err, WeightsError) and names(err, path), err
        else:
            assert all(isinstance(v, np.ndarray) for v in tensors.values())


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A real HF-layout ELECTRA discriminator folder (config.json, model.safetensors, vocab.txt)."""
    import paddle
    from converters.hf import to_hf
    from paddle_electra import preset
    from paddle_electra.modeling import ElectraDiscriminator
    from paddle_electra.tokenizer import SPECIAL_TOKENS, ElectraTokenizer
    root = tmp_path_factory.mktemp("prop-hf")
    (root / "vocab.txt").write_text("\n".join(list(SPECIAL_TOKENS) + CJK) + "\n", encoding="utf-8")
    tokenizer = ElectraTokenizer(str(root / "vocab.txt"))
    config = preset("tiny").replace(vocab_size=tokenizer.vocab_size, hidden_size=16, embedding_size=8,
                                    intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    paddle.seed(0)
    ElectraDiscriminator(config).save_pretrained(str(root / "model"), tokenizer=tokenizer)
    to_hf(str(root / "model"), str(root / "hf"))
    return root / "hf"


CONFIG_KEYS = ["vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "intermediate_size", "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
               "max_position_embeddings", "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id",
               "model_type", "position_embedding_type", "architectures", "id2label", "summary_type", "unknown_key"]
CONFIG_VALUE = st.one_of(JSON_VALUES, st.integers(-3, 70), st.floats(-1, 2), st.sampled_from(
    ["gelu", "relu", "electra", "absolute", "ElectraForPreTraining", "ElectraForMaskedLM"]),
    st.lists(st.sampled_from(["ElectraForPreTraining", "ElectraForMaskedLM", "BertModel"]), max_size=2))


@settings(max_examples=200, **COMMON)
@given(changes=st.dictionaries(st.sampled_from(CONFIG_KEYS), st.one_of(CONFIG_VALUE, st.just("<delete>")),
                               max_size=4),
       whole=st.one_of(st.none(), JSON_VALUES.map(json.dumps), st.binary(max_size=20)))
@example(changes={"architectures": [["ElectraForPreTraining"]]}, whole=None)  # unhashable architecture
@example(changes={"architectures": {"a": 1}}, whole=None)
@example(changes={"initializer_range": "wide"}, whole=None)
def test_hf_config_fuzzed_through_from_hf(hf_folder, changes, whole):
    from converters.hf import from_hf
    with tempfile.TemporaryDirectory() as root:
        folder = os.path.join(root, "hf")
        shutil.copytree(hf_folder, folder)
        config_path = os.path.join(folder, "config.json")
        config = json.load(open(config_path, encoding="utf-8"))
        for key, value in changes.items():
            if value == "<delete>":
                config.pop(key, None)
            else:
                config[key] = value
        with open(config_path, "wb") as f:
            f.write(whole if isinstance(whole, bytes) else (whole or json.dumps(config)).encode("utf-8"))
        out = os.path.join(root, "out")
        head, err = call(from_hf, folder, out)
        leftovers = [n for n in os.listdir(root) if n not in ("hf", "out")]
        assert not leftovers, leftovers
        if err is not None:
            tried("HF config.json via from_hf", outcome_of(err), 200)
            assert not os.path.exists(out)
            assert names(err, config_path, os.path.join(folder, "model.safetensors"),
                         os.path.join(folder, "vocab.txt")), err
            return
        tried("HF config.json via from_hf", f"converted ({head})", 200)
        assert sorted(os.listdir(out)) == ["config.json", "manifest.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]


FIELD_TYPES = {"vocab_size": int, "embedding_size": int, "hidden_size": int, "num_hidden_layers": int,
               "num_attention_heads": int, "intermediate_size": int, "max_position_embeddings": int,
               "type_vocab_size": int, "pad_token_id": int, "hidden_act": str, "model_type": str,
               "position_embedding_type": str, "hidden_dropout_prob": float, "attention_probs_dropout_prob": float,
               "initializer_range": float, "layer_norm_eps": float}


@settings(max_examples=400, **COMMON)
@given(data=st.dictionaries(st.one_of(st.sampled_from(list(FIELD_TYPES)), st.sampled_from(CONFIG_KEYS),
                                      st.text(max_size=8)), CONFIG_VALUE, max_size=8),
       wrap=st.sampled_from([None] * 8 + ["list", "str"]))
@example(data={"initializer_range": "wide"}, wrap=None)
@example(data={"layer_norm_eps": True}, wrap=None)
@example(data={"layer_norm_eps": float("inf")}, wrap=None)
@example(data={"hidden_dropout_prob": False}, wrap=None)
@example(data={"pad_token_id": "0"}, wrap=None)
@example(data={"pad_token_id": 21128}, wrap=None)
@example(data={"initializer_range": float("nan")}, wrap=None)
def test_electra_config_from_dict(data, wrap):
    from paddle_electra.config import ElectraConfig
    value = {"list": [data], "str": json.dumps(data)}.get(wrap, data)
    config, err = call(ElectraConfig.from_dict, value, source="fuzzed.json")
    if err is not None:
        tried("ElectraConfig.from_dict", outcome_of(err), 400)
        assert isinstance(err, ConfigError) and str(err).startswith("fuzzed.json:"), err
        return
    tried("ElectraConfig.from_dict", "accepted", 400)
    # accepted: every field has its declared type (no bools for numbers) and a buildable value
    for name, kind in FIELD_TYPES.items():
        field_value = getattr(config, name)
        assert isinstance(field_value, (int, float) if kind is float else kind), (name, field_value)
        assert not isinstance(field_value, bool), (name, field_value)
        if kind is float:
            assert math.isfinite(field_value), (name, field_value)
    assert 0 <= config.pad_token_id < config.vocab_size
    assert config.initializer_range > 0 and config.layer_norm_eps > 0
    again = ElectraConfig.from_dict(json.loads(json.dumps(config.to_dict())), source="round trip")
    assert again == config and again.extras == config.extras


@pytest.mark.slow
def test_randomized_pass():
    """Every property above again, with inputs drawn from a seed that differs between runs (each CI run explores new
    cases; the fixed set above stays the regression net). The seed is printed; a failure replays with the command
    in the message. PADDLE_ELECTRA_PROPERTY_SEED=N picks the seed."""
    if os.environ.get(RANDOM_PASS_ENV) == "1":
        pytest.skip("this is the randomized pass itself")
    seed = int(os.environ.get("PADDLE_ELECTRA_PROPERTY_SEED") or random.SystemRandom().randrange(2 ** 31))
    replay = (f"{RANDOM_PASS_ENV}=1 python -m pytest -p no:cacheprovider tests/test_properties.py "
              f"--hypothesis-seed={seed}")
    print(f"randomized property pass, seed {seed}; replay: {replay}")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", os.path.abspath(__file__),
                           f"--hypothesis-seed={seed}"], cwd=REPO, env=dict(os.environ, **{RANDOM_PASS_ENV: "1"}),
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"seed {seed} failed; replay: {replay}\n{done.stdout[-6000:]}{done.stderr[-2000:]}"
