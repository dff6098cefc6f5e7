"""ChnSentiCorp review sentiment: `label<TAB>text_a` TSV, 0 = negative, 1 = positive (HFL/ERNIE 9,600/1,200/1,200)."""
from ..kinds import ClassificationTask
from .registry import register_task


@register_task("chnsenticorp")
class ChnSentiCorp(ClassificationTask):
    """Binary sentiment of hotel, book and laptop reviews."""

    description = "ChnSentiCorp sentiment (accuracy)"
    labels = ("0", "1")
    text_a_names = ("text_a", "text", "review", "sentence")
    headerless = ("label", "text_a")
    defaults = {"max_seq_length": 256}  # reviews average ~100 chars with a long tail; HFL used 256 for this task
