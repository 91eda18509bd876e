# Set-up and entry points. Only Python 3.10+ with pip is needed; everything goes into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# PyTorch is installed first and pinned here (on CPU machines this takes the CPU wheel);
# the package itself accepts a range (pyproject.toml).
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test docs wheel-check bench-quality bench-speed clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test,bench]"
	touch $@

$(VENV)/.docs-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test,bench,docs]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/seqrec demo

test: install
	$(BIN)/python -m pytest -q

# The documentation site (mkdocs.yml) into site/; any warning is an error. NO_MKDOCS_2_WARNING
# hides mkdocs-material's banner about its end of life (May 2027), which is no build warning.
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

# Builds the sdist and, from it, the wheel (a build that prints a warning fails), installs the
# wheel into a fresh temporary venv (PyTorch first, as above) and runs .ci/wheel_smoke.py there,
# outside the source tree. pip skips byte-compiling (most of PyTorch is never imported here);
# PYTHONDONTWRITEBYTECODE is unset so that the modules imported are compiled once and the build
# does not warn that it skips byte-compiling.
wheel-check:
	@set -eu; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; t0=$$(date +%s); \
	step() { echo "wheel-check: $$1 ($$(( $$(date +%s) - t0 )) s)"; }; \
	step "fresh venv in $$tmp"; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install --quiet --no-compile build "$(TORCH_SPEC)"; \
	step "building the sdist and the wheel"; \
	if ! env -u PYTHONDONTWRITEBYTECODE "$$tmp/venv/bin/python" -m build --outdir "$$tmp/dist" . > "$$tmp/build.log" 2>&1; then \
		cat "$$tmp/build.log"; echo "wheel-check: the build failed"; exit 1; fi; \
	if grep -i -E "warning|deprecat" "$$tmp/build.log"; then echo "wheel-check: the build printed warnings"; exit 1; fi; \
	step "installing the wheel"; \
	"$$tmp/venv/bin/pip" install --quiet --no-compile "$$tmp"/dist/seqrec-*.whl; \
	step "smoke test"; \
	env -u PYTHONDONTWRITEBYTECODE "$$tmp/venv/bin/seqrec" --help > /dev/null; \
	(cd "$$tmp" && env -u PYTHONPATH -u PYTHONDONTWRITEBYTECODE "$$tmp/venv/bin/python" "$(CURDIR)/.ci/wheel_smoke.py"); \
	step "done"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache site
