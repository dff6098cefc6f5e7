"""Does pretraining pay off? Paired comparisons with intervals, next to simple non-neural baselines.

- `paired_gain`: the pretrained and the random-init model are fine-tuned with the same seed (same head
  initialisation, same data order) per seed; the gain is the mean of the per-seed differences, with a 95% interval
  from Student's t over those differences (n - 1 degrees of freedom).
- `bag_of_characters`: the baseline a reader should compare against, on exactly the fine-tuning data (the same
  `max_train_examples` subsample, the full dev split):
  - sentence tasks: character 1-2-gram TF-IDF + logistic regression (C = 4), scored by accuracy;
  - tagging tasks: every character gets its most frequent tag in the training sentences (unknown characters: the
    most frequent tag overall), scored by chunk F1 like the fine-tuned models.
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from collections import Counter, defaultdict
from typing import Dict, Optional, Sequence

from paddle_electra.errors import DataError, command
from paddle_electra.runconfig import ArgumentParser


def t_quantile_975(df: int) -> float:
    """The two-sided 95% quantile of Student's t with `df` degrees of freedom."""
    from scipy.stats import t
    return float(t.ppf(0.975, df))


def paired_gain(pretrained: Dict[str, float], random_init: Dict[str, float]) -> dict:
    """Mean and 95% interval of pretrained - random_init over the seeds both have (at least 2)."""
    seeds = [s for s in pretrained if s in random_init]
    if len(seeds) < 2:
        raise ValueError(f"a paired interval needs at least 2 common seeds, got {seeds}")
    diffs = [pretrained[s] - random_init[s] for s in seeds]
    mean = statistics.fmean(diffs)
    half = t_quantile_975(len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return {"seeds": len(seeds), "gain_mean": mean, "gain_ci95": [mean - half, mean + half],
            "gain_per_seed": dict(zip(seeds, diffs)), "gain_sd": statistics.stdev(diffs)}


def bag_of_characters(task, train_examples: Sequence, dev_examples: Sequence) -> dict:
    """The task's simple baseline on these examples: {"name", "metric", "value"} (value in percent)."""
    if task.kind == "token-cls":
        return {"name": "most frequent tag per character", "metric": "f1",
                "value": most_frequent_tag(task, train_examples, dev_examples)}
    return {"name": "char 1-2-gram TF-IDF + logistic regression", "metric": "accuracy",
            "value": char_ngram_logistic_regression(train_examples, dev_examples)}


def char_ngram_logistic_regression(train_examples, dev_examples, C: float = 4.0) -> float:
    """Dev accuracy (percent) of TF-IDF over character 1-2-grams + logistic regression, on text_a (+ text_b)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    def text(e):
        return e.text_a if not getattr(e, "text_b", None) else f"{e.text_a}\u3000{e.text_b}"

    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True)
    x_train = vectorizer.fit_transform([text(e) for e in train_examples])
    classifier = LogisticRegression(C=C, max_iter=2000)
    classifier.fit(x_train, [e.label for e in train_examples])
    predicted = classifier.predict(vectorizer.transform([text(e) for e in dev_examples]))
    return 100.0 * sum(p == e.label for p, e in zip(predicted, dev_examples)) / len(dev_examples)


def most_frequent_tag(task, train_examples, dev_examples) -> float:
    """Dev chunk F1 (percent) of tagging each character with its most frequent training tag."""
    from paddle_electra.metrics import ChunkF1Scorer
    by_char, overall = defaultdict(Counter), Counter()
    for e in train_examples:
        for char, tag in zip(e.chars, e.tags):
            by_char[char][tag] += 1
            overall[tag] += 1
    fallback = overall.most_common(1)[0][0]
    best = {char: counts.most_common(1)[0][0] for char, counts in by_char.items()}
    scorer = ChunkF1Scorer()
    scorer.update([[best.get(c, fallback) for c in e.chars] for e in dev_examples], [e.tags for e in dev_examples])
    return scorer.result()["f1"]


def evidence_row(task_name: str, train_examples: int, pretrained: Dict[str, float], random_init: Dict[str, float],
                 baseline: dict, metric: str, protocol: Optional[dict] = None) -> dict:
    """One entry of results.json's "evidence" list (the contract in pretrain/README.md)."""
    gain = paired_gain(pretrained, random_init)
    return {"task": task_name, "metric": metric, "train_examples": train_examples, "seeds": gain["seeds"],
            "pretrained_mean": statistics.fmean(pretrained.values()),
            "random_init_mean": statistics.fmean(random_init.values()),
            "gain_mean": gain["gain_mean"], "gain_ci95": gain["gain_ci95"], "gain_per_seed": gain["gain_per_seed"],
            "pretrained_per_seed": pretrained, "random_init_per_seed": random_init,
            "baseline_name": baseline["name"], "baseline_mean": baseline["value"], **({"protocol": protocol}
                                                                                        if protocol else {})}


def evidence_table(rows) -> str:
    """Markdown table of evidence rows (results.json's "evidence"), with the per-seed gains under it."""
    lines = ["| task | labelled examples | metric | seeds | pretrained | random init | gain [95% CI] | "
             "bag-of-characters baseline |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['task']} | {row['train_examples']:,} | {row['metric']} | {row['seeds']} | "
                     f"{row['pretrained_mean']:.2f} | {row['random_init_mean']:.2f} | {row['gain_mean']:+.2f} "
                     f"[{row['gain_ci95'][0]:+.2f}, {row['gain_ci95'][1]:+.2f}] | {row['baseline_mean']:.2f} "
                     f"({row['baseline_name']}) |")
    lines += ["", "Per-seed gains (pretrained - random init): " + "; ".join(
        f"{row['task']}-{row['train_examples']}: " + ", ".join(f"{d:+.2f}" for d in row["gain_per_seed"].values())
        for row in rows) + "."]
    return "\n".join(lines)


@command
def main(argv=None) -> int:
    """`python -m pretrain.demo.evidence RESULTS.json ...`: the evidence table of each demo results file."""
    parser = ArgumentParser(prog="python -m pretrain.demo.evidence", description=main.__doc__)
    parser.add_argument("results", nargs="+", help="results.json files written by `python -m pretrain.demo`")
    args = parser.parse_args(argv)
    for path in args.results:
        with open(path, encoding="utf-8") as f:
            try:
                results = json.load(f)
            except ValueError as err:
                raise DataError(f"{path}: not a JSON file ({err})") from None
        try:
            pre = results["pretraining"]
            header = (f"`{path}`: seed {results.get('seed', 0)}, {pre['steps']} pretraining steps in "
                      f"{pre['minutes']:g} min, demo {results['stage_seconds'] / 60:.1f} min in all (its stages "
                      f"added up)\n")
            table = evidence_table(results["evidence"])
        except (KeyError, TypeError, AttributeError) as err:
            raise DataError(f"{path}: not a finished `pretrain.demo` results file (field {err} missing or of the "
                            f"wrong type)") from None
        print(header)
        print(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
