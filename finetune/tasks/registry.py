"""The task registry: `@register_task("name")` on a Task subclass; `get_task(name)` returns an instance."""
from __future__ import annotations

import difflib

from paddle_electra.errors import ConfigError

_TASKS = {}


def register_task(name: str):
    """Class decorator adding a Task subclass under `name`; a second task with the same name is an error."""
    def register(cls):
        if name in _TASKS:
            raise ConfigError(f"task {name!r} is registered twice ({_TASKS[name].__module__} and {cls.__module__})")
        cls.name = name
        _TASKS[name] = cls
        return cls
    return register


def get_task(name: str):
    """A fresh instance of the task registered as `name`; ConfigError listing the known names otherwise."""
    if name not in _TASKS:
        close = difflib.get_close_matches(name, list(_TASKS), n=2)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown task {name!r}{hint}; known tasks: {', '.join(sorted(_TASKS))}")
    return _TASKS[name]()


def task_names():
    """Registered task names, sorted."""
    return sorted(_TASKS)
