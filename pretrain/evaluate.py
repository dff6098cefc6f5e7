"""Evidence that pretraining learned: replaced-token detection and masked-LM accuracy on held-out text.

Metrics, over a fixed set of held-out examples with seeded masking and generator sampling (dropout off):
- disc_auc: ROC AUC of the discriminator's logits for "replaced" vs "original" over the real tokens, [CLS]/[SEP]
  excluded (they are never replaced; the official disc_auc counts them, which inflates it slightly). 0.5 = chance.
- disc_accuracy / disc_precision / disc_recall (percent, logit > 0 = replaced).
- gen_accuracy: argmax accuracy of the generator at the masked slots (percent), the official masked_lm_accuracy.
  15% of those slots keep the original token in the generator's input (no random-token 10% in ELECTRA), so up to
  ~15 points of it can come from copying; gen_accuracy_at_mask counts only the slots shown as [MASK].
- unigram_accuracy: the same for always predicting the most frequent non-special token of the TRAIN set (the
  masked targets are uniform over non-special tokens, so this is the best context-free guess).
- gen_loss / disc_loss: the objective's two terms.

    python pretrain/evaluate.py --model-dir OUTPUT/export --data HELDOUT_DATASET --train-data TRAIN_DATASET
    python pretrain/evaluate.py --checkpoint OUTPUT/checkpoints/step-N --data HELDOUT_DATASET
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

import paddle_electra  # noqa: F401  (sets the CPU environment before paddle is imported)
from paddle_electra.errors import command
from paddle_electra.runconfig import ArgumentParser


def unigram_token(token_counts: np.ndarray, special_ids) -> int:
    """The most frequent non-special token id in a dataset's token counts."""
    counts = np.asarray(token_counts, dtype=np.int64).copy()
    counts[list(special_ids)] = -1
    return int(counts.argmax())


def evaluate(model, dataset, unigram_id: int, batch_size: int = 32, num_batches: int = 50, seed: int = 1234,
             amp=None, masking: str = "token") -> dict:
    """Score an ElectraForPretraining on up to batch_size * num_batches examples of a PretrainingDataset, masking
    single tokens or (`masking` "whole-word", a dataset with word boundaries) whole words."""
    import paddle
    from paddle_electra.metrics import BinaryScorer
    from pretrain.rng import draw_masks, draw_sample_uniforms

    was_training = model.training
    model.eval()
    scorer = BinaryScorer()
    n = min(len(dataset), batch_size * num_batches)
    order = np.random.default_rng(seed).permutation(len(dataset))[:n]  # a fixed sample of the held-out set
    special = np.array(sorted(model.special_ids))
    totals = dict(gen_loss=0.0, disc_loss=0.0, gen_correct=0.0, unigram_correct=0.0, masked=0.0, real=0.0,
                  at_mask_correct=0.0, at_mask=0.0)
    with paddle.no_grad():
        for start in range(0, n, batch_size):
            positions = np.arange(start, min(start + batch_size, n))
            arrays = dataset.batch(order[positions], word_starts=True) if masking == "whole-word" \
                else dataset.batch(order[positions])
            starts = arrays.pop("word_starts", None)
            batch = {k: paddle.to_tensor(v) for k, v in arrays.items()}
            masked = draw_masks(batch["input_ids"], batch["attention_mask"], positions, seed, model.special_ids,
                                model.mask_token_id, model.mask_prob, word_starts=starts)
            uniforms = draw_sample_uniforms(positions, masked.positions.shape[1], seed)
            with paddle.amp.auto_cast(enable=amp is not None, dtype=amp or "float16", level="O1"):
                out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], masked=masked,
                            sample_uniforms=uniforms)
            ids = batch["input_ids"].numpy()
            scored = batch["attention_mask"].numpy().astype(bool) & ~np.isin(ids, special)
            scorer.update(out.disc_logits.numpy(), out.disc_labels.numpy(), mask=scored)
            weights = masked.weights.numpy()
            w, r = float(out.gen_slots), float(out.real_tokens)
            totals["gen_loss"] += float(out.gen_loss_sum)
            totals["disc_loss"] += float(out.disc_loss_sum)
            correct = out.gen_correct.numpy()  # per slot, 0 where the slot is not chosen
            totals["gen_correct"] += float(correct.sum())
            # the chosen slots shown to the generator as [MASK] (not kept or randomly replaced)
            shown = np.take_along_axis(masked.masked_ids.numpy(), masked.positions.numpy(), axis=1)
            at_mask = (shown == model.mask_token_id) * weights
            totals["at_mask_correct"] += float((correct * at_mask).sum())
            totals["at_mask"] += float(at_mask.sum())
            totals["unigram_correct"] += float(((masked.targets.numpy() == unigram_id) * weights).sum())
            totals["masked"] += w
            totals["real"] += r
    if was_training:
        model.train()
    disc = scorer.result()
    return {
        "examples": int(n),
        "disc_auc": disc["auc"],
        "disc_accuracy": disc["accuracy"],
        "disc_precision": disc["precision"],
        "disc_recall": disc["recall"],
        "replaced_fraction": disc["positives"] / disc["count"],
        "replaced_tokens": int(disc["positives"]), "scored_tokens": int(disc["count"]),
        "masked_slots": int(totals["masked"]), "at_mask_slots": int(totals["at_mask"]),
        "gen_accuracy": 100.0 * totals["gen_correct"] / totals["masked"],
        "gen_accuracy_at_mask": 100.0 * totals["at_mask_correct"] / max(totals["at_mask"], 1.0),
        "unigram_accuracy": 100.0 * totals["unigram_correct"] / totals["masked"],
        "unigram_token_id": unigram_id,
        "gen_loss": totals["gen_loss"] / totals["masked"],
        "disc_loss": totals["disc_loss"] / totals["real"],
    }


def standard_errors(result: dict) -> dict:
    """Sampling standard errors of an evaluate() result's headline numbers, for margins in tests and reports:
    disc_auc by Hanley & McNeil (1982) from the counts of replaced and original tokens; the generator accuracies
    (percent) as binomial proportions over their slots."""
    auc, n_pos = result["disc_auc"], result["replaced_tokens"]
    n_neg = result["scored_tokens"] - n_pos
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    auc_var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)

    def binomial(percent, n):
        p = percent / 100.0
        return 100.0 * (p * (1.0 - p) / max(n, 1)) ** 0.5

    return {"disc_auc": auc_var ** 0.5,
            "gen_accuracy": binomial(result["gen_accuracy"], result["masked_slots"]),
            "gen_accuracy_at_mask": binomial(result["gen_accuracy_at_mask"], result["at_mask_slots"]),
            "unigram_accuracy": binomial(result["unigram_accuracy"], result["masked_slots"])}


def format_result(result: dict) -> str:
    """One human-readable line."""
    auc = "n/a" if result["disc_auc"] is None else f"{result['disc_auc']:.4f}"
    return (f"held-out ({result['examples']} examples): disc AUC {auc}, acc {result['disc_accuracy']:.2f}%, "
            f"precision {result['disc_precision']:.2f}%, recall {result['disc_recall']:.2f}% | generator MLM acc "
            f"{result['gen_accuracy']:.2f}% ({result['gen_accuracy_at_mask']:.2f}% at [MASK]) vs unigram baseline "
            f"{result['unigram_accuracy']:.2f}% | gen loss "
            f"{result['gen_loss']:.4f}, disc loss {result['disc_loss']:.4f}")


def _model_from_dirs(model_dir, mask_prob=0.15):
    from paddle_electra.config import ElectraConfig
    from paddle_electra.pretraining import ElectraForPretraining
    from paddle_electra.tokenizer import ElectraTokenizer
    from paddle_electra.weights import CONFIG_NAME, WEIGHTS_NAME, load_safetensors, load_state

    disc_dir, gen_dir = os.path.join(model_dir, "discriminator"), os.path.join(model_dir, "generator")
    tokenizer = ElectraTokenizer.from_pretrained(disc_dir)
    model = ElectraForPretraining(ElectraConfig.from_json(os.path.join(disc_dir, CONFIG_NAME)),
                                  ElectraConfig.from_json(os.path.join(gen_dir, CONFIG_NAME)),
                                  tokenizer.special_token_ids, tokenizer.mask_token_id, mask_prob=mask_prob)
    load_state(model.discriminator, load_safetensors(os.path.join(disc_dir, WEIGHTS_NAME)), disc_dir)
    load_state(model.generator, load_safetensors(os.path.join(gen_dir, WEIGHTS_NAME)), gen_dir)
    return model, tokenizer


@command
def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a pretraining checkpoint directory")
    source.add_argument("--model-dir", help="an export directory holding discriminator/ and generator/")
    parser.add_argument("--data", required=True, help="held-out dataset directory (pretrain/data.py, same vocab)")
    parser.add_argument("--train-data", help="training dataset directory, for the unigram baseline (default: the "
                                             "checkpoint's; with --model-dir required)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--masking", choices=("token", "whole-word"), default="token",
                        help="how positions are chosen (whole-word: --data built with --word-boundaries jieba)")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)

    from paddle_electra.errors import ConfigError
    from pretrain.dataset import PretrainingDataset
    train_dir = args.train_data
    if args.checkpoint:
        from pretrain.export import model_from_checkpoint
        model, tokenizer, state = model_from_checkpoint(args.checkpoint)
        train_dir = train_dir or state["config"]["data"]
    else:
        model, tokenizer = _model_from_dirs(args.model_dir)
        if not train_dir:
            raise ConfigError("--train-data is required with --model-dir (for the unigram baseline)")
    heldout, train = PretrainingDataset(args.data), PretrainingDataset(train_dir)
    for name, data in (("--data", heldout), ("--train-data", train)):
        if data.vocab_size != model.generator.config.vocab_size:
            raise ConfigError(f"{name} {data.directory} has vocab size {data.vocab_size}, the model "
                              f"{model.generator.config.vocab_size}")
    result = evaluate(model, heldout, unigram_token(train.token_counts(), tokenizer.special_token_ids),
                      args.batch_size, args.batches, args.seed, masking=args.masking)
    if not args.json:
        print(format_result(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
