# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test demo lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,demo]'
	touch $(STAMP)

# Three workers on two cores: most of the suite's time is spent waiting on kernels (the CPU
# stays about three-quarters busy). Work stealing: a worker that runs out takes tests queued
# for another, so none idles while one works through a queue of slow tests. Every test has its
# own state dir, daemon and files; `pytest` alone runs them serially.
test: install
	$(BIN)/python -m pytest -n 3 --dist worksteal

demo: install
	$(BIN)/nb run examples/demo.ipynb

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python -m ops.bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
