# dfh-book: two commands do everything (see README.md)
#   make book   - set up .venv and render the HTML book into _build/html
#   make test   - set up .venv, unit tests, every chapter under nbval, book build check
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Empty PROFILE: render the committed outputs of the real runs (fast).
# PROFILE=tiny|cpu|gpu [DATASET=lfw|synthfaces|orl|...]: re-execute every chapter first.
PROFILE ?=
DATASET ?=
NOTEBOOKS := $(shell $(PYTHON) -c "import re;print(' '.join(m+'.ipynb' for m in re.findall(r'file:\s*(book/\d\d_\S+)', open('_toc.yml').read())))")

.PHONY: book test lint unit notebooks book-check execute clean venv

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

book: venv
ifeq ($(PROFILE),)
	$(BIN)/jupyter-book build . --path-output . --keep-going
else
	rm -rf _build/src && mkdir -p _build/src && cp -r _config.yml _toc.yml book _build/src/
	DFH_PROFILE=$(PROFILE) DFH_DATASET=$(DATASET) $(BIN)/python tools/run_notebooks.py $(addprefix _build/src/,$(NOTEBOOKS))
	$(BIN)/jupyter-book build _build/src --path-output . --keep-going
endif
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

# Re-run the chapters in place (how the committed outputs are made), e.g.
#   make execute PROFILE=cpu DATASET=lfw
execute: venv
	DFH_PROFILE=$(or $(PROFILE),cpu) DFH_DATASET=$(DATASET) $(BIN)/python tools/run_notebooks.py $(NOTEBOOKS)

test: lint unit notebooks book-check

# the library's layers and no import cycles (contracts in pyproject.toml)
lint: venv
	$(BIN)/lint-imports

unit: venv
	$(BIN)/python -m pytest tests -q

# nbval re-runs every chapter in the tiny profile; it compares only cells
# marked NBVAL_CHECK_OUTPUT against the committed outputs.
notebooks: venv
	DFH_PROFILE=tiny $(BIN)/python -m pytest -q --nbval-lax --nbval-current-env \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider $(NOTEBOOKS)

book-check: venv
	rm -rf _build/check
	$(BIN)/jupyter-book build . --path-output _build/check --warningiserror --nitpick --keep-going
	$(BIN)/python tools/check_book.py _build/check/_build/html

clean:
	rm -rf _build
