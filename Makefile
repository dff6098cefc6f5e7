# Two entry points: `make demo` (the main job on the embedded default) and `make test`.
# Both create or reuse .venv and install the project with pinned requirements.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

$(VENV)/.installed: setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,export]'
	touch $@

install: $(VENV)/.installed

# lint (pyflakes rules and syntax errors) runs first: the README's test command and CI run it
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check --select F,E9 .

test: lint
	$(PY) -m pytest -q -m "not slow"
	$(PY) -m pytest -q -m slow; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

demo: $(VENV)/.installed
	$(PY) -m pretrain.demo $(ARGS)

.PHONY: install lint test demo
