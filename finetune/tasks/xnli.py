"""XNLI (Chinese): natural language inference on `text_a<TAB>text_b<TAB>label` (ERNIE's copy), the XNLI-1.0
dev/test layout (language, gold_label, ..., sentence1, sentence2; only `zh` rows are kept) or the XNLI-MT train
layout (premise, hypo, label).

Labels: ids 0/1/2 = contradiction/entailment/neutral, the official code's sorted order. The official code spells the
first "contradictory" (the XNLI-MT train spelling) while XNLI-1.0 dev/test and ERNIE's copy say "contradiction";
both are read as one label, written as "contradiction".
"""
from ..kinds import ClassificationTask
from .registry import register_task


@register_task("xnli")
class XNLI(ClassificationTask):
    """Premise / hypothesis: entailment, neutral or contradiction."""

    description = "XNLI zh natural language inference (accuracy)"
    labels = ("contradiction", "entailment", "neutral")
    label_aliases = {"contradictory": "contradiction"}
    text_a_names = ("text_a", "sentence1", "premise")
    text_b_names = ("text_b", "sentence2", "hypothesis", "hypo")
    label_names = ("label", "gold_label")
    headerless = ("text_a", "text_b", "label")
    extra_columns = {"language": ("language",)}
    language = "zh"

    def keep_row(self, row, stats):
        # the official reader has no language filter, but the XNLI-1.0 files hold 15 languages
        if "language" in row and row["language"].strip() != self.language:
            stats.skip(f"language other than {self.language}")
            return False
        return True
