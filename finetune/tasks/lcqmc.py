"""LCQMC question matching: `text_a<TAB>text_b<TAB>label` TSV, 1 = same intent (238,766 / 8,802 / 12,500)."""
from ..kinds import ClassificationTask
from .registry import register_task


@register_task("lcqmc")
class LCQMC(ClassificationTask):
    """Whether two questions ask the same thing; a text pair through the seq-cls head, as the official code."""

    description = "LCQMC question matching (accuracy)"
    labels = ("0", "1")
    text_a_names = ("text_a", "sentence1", "query", "question1", "text_left")
    text_b_names = ("text_b", "sentence2", "title", "question2", "text_right")
    headerless = ("text_a", "text_b", "label")  # bertorch/CSTS copies have no header line
