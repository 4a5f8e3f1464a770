# Every target creates the environment itself: a fresh machine needs only Python 3.11.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or run: make PYTHON=python3 ...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/oscillax atlas --out runs/demo --force

test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=15 tests

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -m "not slow" tests

lint: $(STAMP)
	$(VENV)/bin/ruff check oscillax tests benchmarks notebooks

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
