"""The task kinds: each implements read -> featurize -> (hub module head) -> evaluate once for its data sets."""
from .base import Features, Split, Task  # noqa: F401
from .classification import ClassificationTask, TextExample  # noqa: F401
from .span import QAExample, SpanTask  # noqa: F401
from .tagging import TaggedExample, TaggingTask  # noqa: F401
