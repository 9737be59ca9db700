# The two set-up commands of the README: `make book` and `make test`.
# Both create the virtual environment in .venv on first use (Python 3.11 and pip only).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[distributed]"
	touch $(STAMP)

book: $(STAMP)
	$(PY) -m mifd book

test: $(STAMP)
	$(PY) -m pytest
