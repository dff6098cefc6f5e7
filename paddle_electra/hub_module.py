"""Import path of modules packaged before the hub code moved to paddle_electra/hub/ (their module.py imports
ElectraHubModule from here). New code imports paddle_electra.hub.module."""
from .hub.module import ElectraHubModule  # noqa: F401
