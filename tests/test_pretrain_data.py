"""Pretraining data: People's Daily reader, the official packing rule, the builder (determinism, bad input), reading."""
import json
import os
import random

import numpy as np
import pytest

from paddle_electra.errors import ConfigError, DataError
from paddle_electra.tokenizer import ElectraTokenizer, build_vocab
from pretrain import corpus
from pretrain.data import BuildOptions, ExamplePacker, build_dataset, chunk_seed
from pretrain.dataset import EpochSampler, PretrainingDataset

CLS, SEP = 2, 3


# --- People's Daily reader -------------------------------------------------------------------------------------------

def test_strip_tags_joins_words_and_keeps_spaces_between_latin_words():
    assert corpus.strip_tags("迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  ——/w") == "迈向充满希望的新世纪——"
    assert corpus.strip_tags("New/nx  York/nx  时报/n  １２月/t  ３１日/t") == "New York时报１２月３１日"
    assert corpus.strip_tags("a/b/nx  x") == "a/b x"  # the tag is after the LAST slash; untagged tokens kept


def test_split_sentences_keeps_closing_quotes():
    text = "他说：“我们走。”大家笑了！真的吗？好"
    assert corpus.split_sentences(text) == ["他说：“我们走。”", "大家笑了！", "真的吗？", "好"]


def test_article_boundaries(tmp_path):
    lines = [
        "北京/ns  举行/v  音乐会/n  （/w  附/v  图片/n  １/m  张/q  ）/w",  # title with a trailing parenthetical
        "本报/r  记者/n  张三/nr",  # byline: still the same article
        "今晚/t  很/d  热闹/a  。/w",
        "（/w  新华社/nt  记者/n  摄/Vg  ）/w",  # photo credit: keeps the state of the line before
        "李鹏/nr  考察/v  企业/n",  # title after body text: a new article
        "向/p  职工/n  祝贺/v  新年/t",  # subtitle
        "他/r  说/v  ：/w",
        "谢谢/v  ！/w  （/w  新华社/nt  电/n  ）/w",
        "第二/m  篇/q",
    ]
    path = tmp_path / "tagged.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    articles = list(corpus.read_articles(str(path)))
    assert [len(a) for a in articles] == [4, 4, 1]
    assert articles[0][0] == "北京举行音乐会（附图片１张）"
    assert articles[2] == ["第二篇"]


def test_peoples_daily_corpus_files(tmp_path):
    stats = corpus.write_corpus(str(tmp_path), heldout_fraction=0.05)
    assert 2500 < stats["documents"] < 3500  # 19,484 lines in ~3,000 articles
    assert stats["heldout_documents"] == round(stats["documents"] * 0.05)
    train = (tmp_path / "train.txt").read_text(encoding="utf-8")
    assert "/v" not in train and "/n " not in train  # tags are gone
    documents = train.strip("\n").split("\n\n")
    assert len(documents) == stats["train_documents"]
    assert all(doc.strip() for doc in documents)
    assert train.startswith("迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）\n中共中央总书记、国家主席江泽民\n")
    assert 1_600_000 < stats["train.txt"]["chars"] + stats["heldout.txt"]["chars"] < 1_900_000


# --- packing --------------------------------------------------------------------------------------------------------

class ScriptedRandom:
    """random.Random stand-in returning scripted values (to pin every branch of the packing rule)."""

    def __init__(self, values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)

    def randint(self, a, b):
        return a


def sentence(n, start):
    return list(range(start, start + n))


def test_segment_rule_is_the_fixed_official_one():
    # target 20 -> A target (20 - 3) // 2 = 8; sentences of 5: the 2nd goes to A only on the coin flip
    s1, s2, s3, s4 = sentence(5, 10), sentence(5, 20), sentence(5, 30), sentence(5, 40)
    packer = ExamplePacker(20, CLS, SEP, ScriptedRandom([0.5, 0.9, 0.9]))  # not single; s2 coin -> B; no short
    assert packer.add_sentence(s1) is None
    assert packer.add_sentence(s2) is None
    assert packer.add_sentence(s3) is None
    ids, a_length = packer.add_sentence(s4)  # 20 tokens reach the target (which does not count [CLS]/[SEP])
    assert ids == [CLS] + s1 + [SEP] + (s2 + s3 + s4)[:12] + [SEP]  # B cut to 20 - 5 - 3; the rest is dropped
    assert a_length == 7
    # the coin says A for s2; then A (10) is over target, so s3 and s4 go to B
    packer = ExamplePacker(20, CLS, SEP, ScriptedRandom([0.5, 0.1, 0.9]))
    for s in (s1, s2, s3):
        packer.add_sentence(s)
    ids, a_length = packer.add_sentence(s4)
    assert ids[:a_length] == [CLS] + s1 + s2 + [SEP]
    # the pre-fix code (Chinese-ELECTRA) would put every sentence after a non-empty A into A; the fixed rule lets a
    # short sentence that still fits the A target go back to A even after B started:
    packer = ExamplePacker(40, CLS, SEP, ScriptedRandom([0.5, 0.9, 0.9]))  # A target 18
    long_s, short_s = sentence(12, 50), sentence(3, 70)
    packer.add_sentence(long_s)
    packer.add_sentence(sentence(10, 80))  # 22 >= 18, B empty, A < 18, coin 0.9 -> B
    packer.add_sentence(short_s)  # 12 + 3 < 18 -> A
    ids, a_length = packer.add_sentence(sentence(20, 100))  # 45 >= 40 -> B; example cut
    assert ids[:a_length] == [CLS] + long_s + short_s + [SEP]
    assert len(ids) == 40  # B truncated to max - len(A) - 3 and the overflow discarded


def test_single_segment_and_short_targets():
    packer = ExamplePacker(16, CLS, SEP, ScriptedRandom([0.05, 0.01]))  # single segment; next target short
    ids, a_length = packer.add_sentence(sentence(20, 10))
    assert ids == [CLS] + sentence(14, 10) + [SEP] and a_length == 16  # A cut to max - 2
    assert packer.target_length == 5  # randint(5, 16) -> 5 from the scripted stand-in
    assert packer.end_document() is None  # nothing buffered


def test_packing_statistics_match_the_official_probabilities():
    rng = random.Random(0)
    packer = ExamplePacker(128, CLS, SEP, random.Random(1))
    examples = []
    for _ in range(20000):
        example = packer.add_sentence(sentence(rng.randint(5, 40), 5))
        if example:
            examples.append(example)
    lengths = np.array([len(ids) for ids, _ in examples])
    single = np.mean([a == len(ids) for ids, a in examples])
    assert all(ids[0] == CLS and ids[a - 1] == SEP and ids[-1] == SEP for ids, a in examples)
    assert lengths.max() == 128
    assert 0.03 < np.mean(lengths < 100) < 0.08  # ~5% of targets are uniform in [5, 128]
    assert 0.06 < single < 0.2  # 10% forced single-segment, plus the few where B gets nothing
    assert np.mean([a < len(ids) for ids, a in examples]) > 0.8  # the fixed rule makes B segments common


# --- builder --------------------------------------------------------------------------------------------------------

DOCS = ["中国人民今天很高兴。\n经济发展很快。\n我们一起努力工作。", "第二篇文章讲的是天气。\n明天会下雨吗？\n会的。",
        "ABC公司发布了新产品。\n价格是１２３元。"]


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    (root / "a.txt").write_text("\n\n".join(DOCS * 30) + "\n", encoding="utf-8")
    (root / "b.txt").write_text("\n\n".join(reversed(DOCS * 20)) + "\n", encoding="utf-8")
    vocab = build_vocab([str(root / "a.txt")], 200, str(root.parent / "vocab.txt"), min_frequency=1)
    return root, vocab


def _read_all(directory):
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


def test_build_is_deterministic_whatever_the_worker_count(text_dir, tmp_path):
    root, vocab = text_dir
    options = BuildOptions(max_seq_length=32, chunk_chars=200, seed=7)  # many chunks
    build_dataset([str(root)], tmp_path / "w0", vocab=vocab, options=options, num_workers=0, progress=False)
    build_dataset([str(root)], tmp_path / "w2", vocab=vocab, options=options, num_workers=2, progress=False)
    assert _read_all(tmp_path / "w0") == _read_all(tmp_path / "w2")
    other = BuildOptions(max_seq_length=32, chunk_chars=200, seed=8)
    build_dataset([str(root)], tmp_path / "s8", vocab=vocab, options=other, num_workers=0, progress=False)
    assert (tmp_path / "s8" / "tokens-00000.bin").read_bytes() != (tmp_path / "w0" / "tokens-00000.bin").read_bytes()


def test_built_examples_decode_to_the_text_and_rebuild_masks(text_dir, tmp_path):
    root, vocab = text_dir
    index = build_dataset([str(root / "a.txt")], tmp_path / "d", vocab=vocab, options=BuildOptions(max_seq_length=64),
                          num_workers=0, progress=False)
    data = PretrainingDataset(tmp_path / "d")
    assert len(data) == index["num_examples"] and index["dtype"] == "uint16"
    tok = data.tokenizer()
    for i in range(len(data)):
        ids, a_length = data.example(i)
        assert ids[0] == tok.cls_token_id and ids[a_length - 1] == tok.sep_token_id and ids[-1] == tok.sep_token_id
        assert len(ids) <= 64
    batch = data.batch([0, 1, len(data) - 1])
    ids0, a0 = data.example(0)
    assert batch["input_ids"].shape == (3, 64) and batch["input_ids"].dtype == np.int64
    assert batch["attention_mask"][0].sum() == len(ids0)
    assert list(batch["token_type_ids"][0]) == [0] * a0 + [1] * (len(ids0) - a0) + [0] * (64 - len(ids0))
    assert (batch["input_ids"][0, len(ids0):] == 0).all()
    counts = data.token_counts()
    assert counts.sum() == index["num_tokens"] and counts[tok.cls_token_id] == len(data)
    # documents are never mixed: every example's text comes from a single document
    docs_text = [d.replace("\n", "").lower() for d in DOCS]
    for i in range(len(data)):
        ids, a_length = data.example(i)
        pieces = [tok.decode(ids[1:a_length - 1]).replace(" ", "")]
        if a_length < len(ids):
            pieces.append(tok.decode(ids[a_length:-1]).replace(" ", ""))
        assert any(all(p in d for p in pieces) for d in docs_text), pieces


def test_512_token_examples(tmp_path):
    text = tmp_path / "long.txt"
    text.write_text("\n".join("这是一个很长的句子用来测试最大长度" * 3 for _ in range(200)) + "\n", encoding="utf-8")
    vocab = build_vocab([str(text)], 100, str(tmp_path / "vocab.txt"), min_frequency=1)
    index = build_dataset([str(text)], tmp_path / "d", vocab=vocab, options=BuildOptions(max_seq_length=512),
                          num_workers=0, progress=False)
    data = PretrainingDataset(tmp_path / "d")
    lengths = [len(data.example(i)[0]) for i in range(len(data))]
    assert max(lengths) == 512 and index["max_seq_length"] == 512
    assert data.batch([0])["input_ids"].shape == (1, 512)


def test_bad_input_is_skipped_and_counted_with_file_and_line(text_dir, tmp_path):
    root, vocab = text_dir
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_bytes(b"")
    (bad / "latin1.txt").write_bytes("好的。\n".encode() + b"caf\xe9 au lait\n" + "很好。\n".encode())
    (bad / "long.txt").write_bytes("短句。\n".encode() + "长".encode() * 400 + b"\n" + "结束。\n".encode())
    options = BuildOptions(max_seq_length=32, max_line_bytes=1000)
    index = build_dataset([str(bad)], tmp_path / "d", vocab=vocab, options=options, num_workers=0, progress=False)
    report = index["bad_input"]
    assert report["counts"] == {"empty_file": 1, "overlong_line": 1, "undecodable_line": 1}
    where = {(os.path.basename(p["path"]), p["line"], p["problem"]) for p in report["first"]}
    assert where == {("empty.txt", None, "empty_file"), ("latin1.txt", 2, "undecodable_line"),
                     ("long.txt", 2, "overlong_line")}
    saved = json.loads((tmp_path / "d" / "index.json").read_text())
    assert saved["bad_input"] == report
    data = PretrainingDataset(tmp_path / "d")
    kept = sum(len(data.example(i)[0]) - 2 for i in range(len(data)))  # single short segments: [CLS] A [SEP]
    tok = ElectraTokenizer(vocab)
    good = ["好的。", "很好。", "短句。", "结束。"]
    assert kept == sum(len(tok.tokenize(line)) for line in good)  # exactly the good lines survive


@pytest.mark.parametrize("name,content,line", [("latin1.txt", "好。\n".encode() + b"\xff\xfe\n", 2),
                                               ("empty.txt", b"", None),
                                               ("long.txt", b"x" * 50 + b"\n", 1)])
def test_fail_policy_raises_naming_file_and_line(text_dir, tmp_path, name, content, line):
    _, vocab = text_dir
    path = tmp_path / name
    path.write_bytes(content)
    options = BuildOptions(on_bad_input="fail", max_line_bytes=20)
    with pytest.raises(DataError) as err:
        build_dataset([str(path)], tmp_path / "d", vocab=vocab, options=options, num_workers=0, progress=False)
    assert str(path) in str(err.value) and (line is None or f"line {line}" in str(err.value))
    assert not (tmp_path / "d").exists() and not any(p.name.startswith(".tmp-d-") for p in tmp_path.iterdir())


def test_overlong_line_is_drained_without_reading_it_whole(text_dir, tmp_path):
    _, vocab = text_dir
    path = tmp_path / "huge.txt"
    with open(path, "wb") as f:
        f.write("开始。\n".encode())
        f.write(b"a" * (3 << 20) + b"\n")  # 3 MiB, far past max_line_bytes
        f.write("结束。\n".encode())
    index = build_dataset([str(path)], tmp_path / "d", vocab=vocab, options=BuildOptions(max_line_bytes=1 << 16),
                          num_workers=0, progress=False)
    assert index["bad_input"]["counts"] == {"overlong_line": 1}
    assert index["bad_input"]["first"][0]["line"] == 2


def test_builder_rejects_bad_arguments(text_dir, tmp_path):
    root, vocab = text_dir
    with pytest.raises(ConfigError):
        build_dataset([str(root)], tmp_path / "d", progress=False)  # neither vocab nor vocab_size
    with pytest.raises(ConfigError):
        BuildOptions(max_seq_length=1024).validate()
    with pytest.raises(DataError):
        build_dataset([str(tmp_path / "missing.txt")], tmp_path / "d", vocab=vocab, progress=False)
    build_dataset([str(root / "a.txt")], tmp_path / "d", vocab=vocab, num_workers=0, progress=False)
    with pytest.raises(ConfigError):  # exists already
        build_dataset([str(root / "a.txt")], tmp_path / "d", vocab=vocab, num_workers=0, progress=False)
    with pytest.raises(DataError):
        PretrainingDataset(tmp_path)  # no index.json


def test_build_vocab_from_the_inputs(text_dir, tmp_path):
    root, _ = text_dir
    index = build_dataset([str(root)], tmp_path / "d", vocab_size=300, num_workers=0, progress=False,
                          options=BuildOptions(max_seq_length=32))
    tok = PretrainingDataset(tmp_path / "d").tokenizer()
    assert tok.vocab_size == index["vocab_size"] and tok.cls_token_id == 2
    assert not (tmp_path / "d" / "vocab-corpus.txt").exists()


def test_chunk_seed_is_stable():
    assert chunk_seed(12345, 0) == chunk_seed(12345, 0) != chunk_seed(12345, 1)
    assert chunk_seed(1, 2) == 1102049323959597529  # pinned: sha256-based, not Python's salted hash()


# --- sampler --------------------------------------------------------------------------------------------------------

def test_epoch_sampler_permutes_each_epoch_and_seeks():
    sampler = EpochSampler(10, seed=3)
    first, second = sampler.indices(np.arange(10)), sampler.indices(np.arange(10, 20))
    assert sorted(first) == list(range(10)) and sorted(second) == list(range(10))
    assert list(first) != list(second)
    fresh = EpochSampler(10, seed=3)  # seeking: any position, no replay of earlier ones
    assert list(fresh.indices(np.arange(15, 25))) == list(sampler.indices(np.arange(15, 25)))
    assert list(EpochSampler(10, seed=4).indices(np.arange(10))) != list(first)


class ChineseElectraBuilder:
    """The pre-fix example builder of Chinese-ELECTRA's build_pretraining_dataset.py, re-written here from its source
    as independently as possible, to pin `ExamplePacker(segment_logic="original")` byte for byte.

    Differences from that source, none of which changes an example: sentences arrive as token-id lists (the
    tokenizer is tested elsewhere) instead of text; the random generator is passed in instead of the `random`
    module; an example is returned as (ids, length of "[CLS] A [SEP]") instead of a tf.train.Example of padded
    input_ids / input_mask / segment_ids (the segment ids are 0 up to that length, 1 after it)."""

    def __init__(self, max_length, rng):
        self.rng, self.max_length, self.target_length = rng, max_length, max_length
        self.current_sentences, self.current_length = [], 0

    def add_line(self, ids):
        if not ids and self.current_length != 0:  # an empty line separates documents
            return self.create_example()
        self.current_sentences.append(ids)
        self.current_length += len(ids)
        if self.current_length >= self.target_length:
            return self.create_example()
        return None

    def create_example(self):
        if self.rng.random() < 0.1:
            first_segment_target_length = 100000
        else:
            first_segment_target_length = (self.target_length - 3) // 2
        first_segment, second_segment = [], []
        for sentence in self.current_sentences:
            # the source's test, with its comment that describes the fixed rule
            if (first_segment or len(first_segment) + len(sentence) < first_segment_target_length
                    or (second_segment and len(first_segment) < first_segment_target_length
                        and self.rng.random() < 0.5)):
                first_segment += sentence
            else:
                second_segment += sentence
        first_segment = first_segment[:self.max_length - 2]
        second_segment = second_segment[:max(0, self.max_length - len(first_segment) - 3)]
        self.current_sentences, self.current_length = [], 0
        if self.rng.random() < 0.05:
            self.target_length = self.rng.randint(5, self.max_length)
        else:
            self.target_length = self.max_length
        ids = [CLS] + first_segment + [SEP]
        a_length = len(ids)
        if second_segment:
            ids += second_segment + [SEP]
        return ids, a_length


@pytest.mark.parametrize("max_length", [32, 128])
def test_original_segment_logic_equals_the_chinese_electra_builder(max_length):
    lengths = random.Random(3)
    documents = [[sentence(lengths.choice([2, 5, 9, 17, 30, 45, 70]), 10 + 100 * d + s)
                  for s in range(lengths.randint(1, 12))] for d in range(400)]
    packer = ExamplePacker(max_length, CLS, SEP, random.Random(11), segment_logic="original")
    reference = ChineseElectraBuilder(max_length, random.Random(11))
    ours, theirs = [], []
    for document in documents:
        for ids in document:
            ours.append(packer.add_sentence(ids))
            theirs.append(reference.add_line(ids))
        ours.append(packer.end_document())
        theirs.append(reference.add_line([]))
    assert ours == theirs
    examples = [e for e in ours if e]
    assert len(examples) > 200
    two_segment = np.mean([a < len(ids) for ids, a in examples])
    fixed = ExamplePacker(max_length, CLS, SEP, random.Random(11))
    fixed_examples = [e for d in documents for e in [fixed.add_sentence(ids) for ids in d] + [fixed.end_document()]
                      if e]
    fixed_two_segment = np.mean([a < len(ids) for ids, a in fixed_examples])
    if max_length == 128:  # sentences mostly shorter than the A target: the bug makes B rare
        assert two_segment < 0.5 * fixed_two_segment, (two_segment, fixed_two_segment)
    for ids, a_length in examples:  # B, where it exists, holds the leading sentences: they came before A's text
        if 2 < a_length < len(ids):  # (A can even be empty: "[CLS] [SEP] B [SEP]")
            assert ids[a_length] < ids[1]


def test_segment_logic_option_is_validated_and_recorded(text_dir, tmp_path):
    root, vocab = text_dir
    with pytest.raises(ConfigError, match="segment_logic"):
        BuildOptions(segment_logic="buggy").validate()
    index = build_dataset([str(root / "a.txt")], tmp_path / "o", vocab=vocab, num_workers=0, progress=False,
                          options=BuildOptions(max_seq_length=32, segment_logic="original"))
    assert index["options"]["segment_logic"] == "original" and "Chinese-ELECTRA" in index["packing"]


def test_datasets_built_apart_are_read_as_one_after_merge(text_dir, tmp_path):
    """Parallel builds (one part of the text files per machine, the same vocab) merged without copying a shard:
    the merged dataset reads the parts' examples in order, and a part built differently is refused by name."""
    import subprocess
    import sys
    from pretrain.data import merge_datasets
    root, vocab = text_dir
    parts = []
    for i, name in enumerate(("a.txt", "b.txt")):
        part = tmp_path / f"part-{i}"
        build_dataset([str(root / name)], part, vocab=vocab, num_workers=0, progress=False,
                      options=BuildOptions(max_seq_length=32, seed=100 + i, shard_tokens=1000,
                                                   chunk_chars=200))  # several shards
        parts.append(PretrainingDataset(part))
    assert all(len(p.index["shards"]) > 1 for p in parts)
    merged_index = merge_datasets([str(tmp_path / "part-0"), str(tmp_path / "part-1")], tmp_path / "all")
    merged = PretrainingDataset(tmp_path / "all")
    assert len(merged) == len(parts[0]) + len(parts[1]) == merged_index["num_examples"]
    everything = [(p, i) for p in parts for i in range(len(p))]
    for k in (0, len(parts[0]) - 1, len(parts[0]), len(merged) - 1, len(merged) // 3):
        part, i = everything[k]
        ids, a_length = merged.example(k)
        want_ids, want_a = part.example(i)
        np.testing.assert_array_equal(ids, want_ids)
        assert a_length == want_a
    np.testing.assert_array_equal(merged.token_counts(), parts[0].token_counts() + parts[1].token_counts())
    assert merged.tokenizer().vocab == parts[0].tokenizer().vocab
    assert merged_index["options"]["seed"] == [100, 101]
    assert not any(name.endswith(".bin") for name in os.listdir(tmp_path / "all"))  # shards stay in the parts

    other = tmp_path / "other"  # another max_seq_length
    build_dataset([str(root / "b.txt")], other, vocab=vocab, num_workers=0, progress=False,
                  options=BuildOptions(max_seq_length=64))
    with pytest.raises(DataError, match="max_seq_length"):
        merge_datasets([str(tmp_path / "part-0"), str(other)], tmp_path / "bad")
    done = subprocess.run([sys.executable, "pretrain/data.py", "--merge", str(tmp_path / "part-0"), str(other),
                           "--output", str(tmp_path / "bad")], capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 2 and "field 'max_seq_length'" in done.stderr and str(other) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
    with pytest.raises(ConfigError, match="inside --output"):
        merge_datasets([str(tmp_path / "all" / "x"), str(tmp_path / "part-1")], tmp_path / "all")
