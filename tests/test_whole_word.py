"""Whole-word masking: jieba word boundaries stored at build time, and the masking rule over them."""
import json

import numpy as np
import paddle
import pytest

from paddle_electra import rtd
from paddle_electra.errors import ConfigError
from pretrain.data import BuildOptions, _init_worker, build_dataset, word_starts
from pretrain.dataset import PretrainingDataset
from pretrain.rng import draw_masks

MASK, SPECIAL = 4, (0, 2, 3, 4)  # [PAD] [CLS] [SEP] [MASK] as in the Chinese vocab's order below


def test_word_starts_follow_jieba_and_never_split_a_wordpiece_word(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "我", "爱", "北", "京", "天", "安",
                                "门", "play", "##ing", "，"]) + "\n", encoding="utf-8")
    _init_worker(str(vocab), True, worker_process=False)
    from pretrain import data
    line = "我爱北京天安门，playing"
    encoded = data._TOKENIZER.encode_batch([line], truncation=False, return_offsets=True)
    ids, offsets = encoded["input_ids"][0][1:-1], encoded["offsets"][0][1:-1]
    tokens = data._TOKENIZER.convert_ids_to_tokens(ids)
    assert tokens == ["我", "爱", "北", "京", "天", "安", "门", "，", "play", "##ing"]
    # jieba: 我 / 爱 / 北京 / 天安门 / ， / playing
    assert word_starts(line, offsets, tokens) == [1, 1, 1, 0, 1, 0, 0, 1, 1, 0]


def _random_batch(rng, b=64, length=32):
    ids = rng.integers(5, 100, size=(b, length))
    real = rng.integers(6, length + 1, size=b)
    attention = (np.arange(length)[None, :] < real[:, None]).astype(np.int64)
    ids[:, 0] = 2
    ids[np.arange(b), real - 1] = 3
    ids = ids * attention
    starts = (rng.random((b, length)) < 0.6).astype(np.int64)  # words of 1-4+ tokens
    starts[:, 0] = 1
    starts[np.arange(b), real - 1] = 1  # [SEP] is a word of its own
    after_sep = np.arange(length)[None, :] >= real[:, None]
    starts[after_sep] = 1
    return ids, attention, starts


def test_no_word_is_ever_partly_chosen_or_partly_shown_and_the_budget_holds():
    rng = np.random.default_rng(0)
    chosen_total, budget_total, candidates_total = 0, 0, 0
    for batch in range(40):
        ids, attention, starts = _random_batch(rng)
        masked = draw_masks(paddle.to_tensor(ids), paddle.to_tensor(attention), np.arange(64) + 64 * batch, 5,
                            SPECIAL, MASK, 0.15, word_starts=starts)
        positions, weights = masked.positions.numpy(), masked.weights.numpy()
        shown = masked.masked_ids.numpy()
        for row in range(64):
            chosen = np.zeros(32, bool)
            chosen[positions[row][weights[row] > 0]] = True
            assert not np.isin(ids[row][chosen], SPECIAL).any()
            word = np.cumsum(starts[row]) - 1
            for w in np.unique(word[chosen]):  # every token of a chosen word is chosen, and shown alike
                members = word == w
                assert chosen[members].all()
                assert len(set((shown[row][members] == MASK).tolist())) == 1
            real = int(attention[row].sum())
            budget = min(max(1, round(real * 0.15)), rtd.max_predictions(32, 0.15), real - 2)
            assert chosen.sum() <= budget
            assert (masked.targets.numpy()[row][weights[row] > 0] == ids[row][positions[row][weights[row] > 0]]).all()
            chosen_total, budget_total = chosen_total + chosen.sum(), budget_total + budget
            candidates_total += real - 2
    # words that do not fit are skipped and smaller ones taken: the budget in tokens is almost always met
    assert 0.95 * budget_total <= chosen_total <= budget_total
    assert abs(chosen_total / candidates_total - 0.15) < 0.03


def test_with_single_token_words_the_budget_is_met_exactly():
    rng = np.random.default_rng(1)
    ids, attention, _ = _random_batch(rng)
    masked = draw_masks(paddle.to_tensor(ids), paddle.to_tensor(attention), np.arange(64), 5, SPECIAL, MASK, 0.15,
                        word_starts=np.ones_like(ids))
    token = draw_masks(paddle.to_tensor(ids), paddle.to_tensor(attention), np.arange(64), 5, SPECIAL, MASK, 0.15)
    assert (masked.weights.numpy().sum(1) == token.weights.numpy().sum(1)).all()


def test_whole_word_masking_is_a_function_of_the_example_position():
    rng = np.random.default_rng(2)
    ids, attention, starts = _random_batch(rng)
    args = (paddle.to_tensor(ids), paddle.to_tensor(attention))
    a = draw_masks(*args, np.arange(64), 9, SPECIAL, MASK, 0.15, word_starts=starts)
    b = draw_masks(*args, np.arange(64), 9, SPECIAL, MASK, 0.15, word_starts=starts)
    half = draw_masks(paddle.to_tensor(ids[32:]), paddle.to_tensor(attention[32:]), np.arange(32, 64), 9, SPECIAL,
                      MASK, 0.15, word_starts=starts[32:])
    assert (a.positions.numpy() == b.positions.numpy()).all()
    assert (a.masked_ids.numpy()[32:] == half.masked_ids.numpy()).all()  # any micro-batch split: the same draws


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("wwm")
    text = root / "text.txt"
    text.write_text("\n\n".join(["中国人民今天很高兴。\n经济发展很快。", "我们一起努力工作。\n明天会下雨吗？"] * 40) + "\n",
                    encoding="utf-8")
    from paddle_electra.tokenizer import build_vocab
    vocab = build_vocab([str(text)], 120, str(root / "vocab.txt"), min_frequency=1)
    options = dict(max_seq_length=24, chunk_chars=100, seed=3)
    plain = root / "plain"
    build_dataset([str(text)], plain, vocab=vocab, options=BuildOptions(**options), num_workers=0, progress=False)
    for workers in (0, 2):
        build_dataset([str(text)], root / f"words{workers}", vocab=vocab, num_workers=workers, progress=False,
                      options=BuildOptions(word_boundaries="jieba", **options))
    return root


def test_boundaries_leave_the_ids_unchanged_and_are_deterministic(built):
    plain, words = PretrainingDataset(built / "plain"), PretrainingDataset(built / "words0")
    assert plain.word_boundaries is None and words.word_boundaries == "jieba"
    for name in sorted(p.name for p in (built / "plain").iterdir()):
        if name.startswith(("tokens-", "examples-")):
            assert (built / "plain" / name).read_bytes() == (built / "words0" / name).read_bytes()
    for p in (built / "words0").iterdir():  # whatever the number of workers
        assert p.read_bytes() == (built / "words2" / p.name).read_bytes()
    tokenizer = words.tokenizer()
    ids, _ = words.example(0)
    starts = words.word_starts(0)
    text = "".join(("|" if s else "") + t for t, s in zip(tokenizer.convert_ids_to_tokens(ids.tolist()), starts))
    assert text == "|[CLS]|中国|人民|今天|很|高兴|。|[SEP]|经济|发展|很快|。|[SEP]"  # two segments
    batch = words.batch([0, 1], word_starts=True)
    assert batch["word_starts"].shape == (2, 24) and "word_starts" not in plain.batch([0])


def test_whole_word_training_needs_boundaries(built, tmp_path):
    from pretrain.config import PretrainConfig
    from pretrain.train import train
    cfg = PretrainConfig.load(overrides=dict(data=str(built / "plain"), output_dir=str(tmp_path / "run"), size="tiny",
                                             masking="whole-word", num_train_steps=2, train_batch_size=4,
                                             warmup_steps=1, progress=False, visualdl=False)).resolve()
    with pytest.raises(ConfigError, match="word boundaries.*--word-boundaries jieba"):
        train(cfg)
    with pytest.raises(ConfigError, match="masking"):
        PretrainConfig.load(overrides=dict(data="d", output_dir="o", masking="words")).resolve()


def test_whole_word_training_runs_and_resumes_exactly(built, tmp_path):
    from pretrain.config import PretrainConfig
    from pretrain.train import train
    base = dict(data=str(built / "words0"), eval_data=str(built / "words2"), eval_batches=2, eval_every=3,
                size="tiny", masking="whole-word", num_train_steps=6, train_batch_size=8,
                warmup_steps=1, progress=False, visualdl=False, save_every=3, export=False, dropout=0.0,
                discriminator={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 1,
                               "intermediate_size": 64, "embedding_size": 32})
    whole = train(PretrainConfig.load(overrides=dict(base, output_dir=str(tmp_path / "a"))).resolve())
    train(PretrainConfig.load(overrides=dict(base, output_dir=str(tmp_path / "b"), max_steps=3)).resolve())
    resumed = train(PretrainConfig.load(overrides=dict(base, output_dir=str(tmp_path / "b"), resume="latest")).resolve())
    assert whole["steps"] == resumed["steps"] == 6
    assert whole["last"]["loss"] == pytest.approx(resumed["last"]["loss"], rel=1e-5)
    evals = [json.loads(line) for line in (tmp_path / "a" / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [3, 6] and all(0.0 <= e["disc_auc"] <= 1.0 for e in evals)
