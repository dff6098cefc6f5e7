"""BQ Corpus bank question matching: `sentence1,sentence2,label` CSV (with BOM) or a text_a/text_b/label TSV."""
from ..kinds import ClassificationTask
from .registry import register_task


@register_task("bqcorpus")
class BQCorpus(ClassificationTask):
    """Whether two banking customer questions mean the same (100,000 / 10,000 / 10,000)."""

    description = "BQ Corpus question matching (accuracy)"
    extensions = ("csv", "tsv")
    labels = ("0", "1")
    text_a_names = ("text_a", "sentence1", "query", "question1", "text_left")
    text_b_names = ("text_b", "sentence2", "title", "question2", "text_right")
    headerless = ("text_a", "text_b", "label")
