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

# Two pytest-xdist workers of one torch thread each (threads x processes = the 2 cores); a
# test file (a notebook's cells: one kernel) runs whole in one worker.
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile
