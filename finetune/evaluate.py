"""Score CMRC 2018 / DRCD predictions like the official cmrc2018_evaluate.py: `python finetune/evaluate.py DATA PRED`.

DATA is the SQuAD-style (CMRC 2018, DRCD) or raw CMRC 2018 JSON; PRED maps question id to answer text. The one
stdout line is byte-identical to the official script's: {"AVERAGE": "%.3f", "F1": "%.3f", "EM": "%.3f",
"TOTAL": n, "SKIP": k, "FILE": PRED}, with the three scores as strings and FILE the predictions path as given.
Unanswered questions are logged to stderr as "Unanswered question: ID", as officially. Bad input exits 2 with a
one-line message naming the file and field.
"""
import json
import sys

from paddle_electra.errors import DataError, command
from paddle_electra.fileio import read_bytes
from paddle_electra.metrics import evaluate_predictions, format_cmrc_result
from paddle_electra.runconfig import ArgumentParser


def load_json(path):
    """Parse a JSON file (UTF-8/16/32, BOM allowed, as json.load on bytes), raising DataError naming the file."""
    raw = read_bytes(path)
    try:
        return json.loads(raw)
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8/16/32 text ({e.reason} at byte {e.start})", path=path) from None
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg} (column {e.colno})", path=path, line=e.lineno) from None


@command
def main(argv=None) -> int:
    """Run the evaluation; returns the exit code (0, or 2 on bad input)."""
    parser = ArgumentParser(description="Official-equivalent CMRC 2018 / DRCD evaluation (EM, F1).")
    parser.add_argument("dataset_file", help="SQuAD-style or raw CMRC 2018 dataset JSON with gold answers")
    parser.add_argument("prediction_file", help="JSON object {question id: predicted answer text}")
    args = parser.parse_args(argv)
    dataset = load_json(args.dataset_file)
    predictions = load_json(args.prediction_file)
    scores = evaluate_predictions(
        dataset, predictions, dataset_path=args.dataset_file, predictions_path=args.prediction_file,
        on_skip=lambda qid: sys.stderr.write(f"Unanswered question: {qid}\n"),
    )
    print(json.dumps(format_cmrc_result(scores, args.prediction_file)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
