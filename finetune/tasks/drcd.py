"""DRCD span-extraction reading comprehension (traditional Chinese, SQuAD format; train 26,936 / dev 3,524 q).

Traditional characters are in the Chinese BERT vocab (21,128), so the text is used as it is, with no conversion to
simplified characters."""
from ..kinds import SpanTask
from .registry import register_task


@register_task("drcd")
class DRCD(SpanTask):
    """Answer spans in Taiwanese Wikipedia paragraphs; scored with the CMRC 2018 script, as HFL do."""

    description = "DRCD reading comprehension (EM / F1)"
    defaults = {"max_seq_length": 512, "num_train_epochs": 2}
