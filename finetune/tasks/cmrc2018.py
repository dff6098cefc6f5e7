"""CMRC 2018 span-extraction reading comprehension (simplified Chinese, SQuAD format; train 10,142 / dev 3,219 q)."""
from ..kinds import SpanTask
from .registry import register_task


@register_task("cmrc2018")
class CMRC2018(SpanTask):
    """Answer spans in Wikipedia paragraphs; scored with the official CMRC 2018 EM / F1."""

    description = "CMRC 2018 reading comprehension (EM / F1)"
    # the seed README's CMRC settings: the official name match ("squad"/"qa") misses cmrc2018, so they are explicit
    defaults = {"max_seq_length": 512, "num_train_epochs": 2}
