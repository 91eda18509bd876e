# Set-up and entry points. Only Python 3.10+ with pip is needed; everything goes into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# PyTorch is installed first and pinned here (on CPU machines this takes the CPU wheel);
# the package itself accepts a range (pyproject.toml).
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test bench-quality bench-speed clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test,bench]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/seqrec demo

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
