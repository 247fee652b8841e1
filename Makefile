# Hands-On Acceleration. On a fresh machine with Python 3.11:
#   make book   set everything up and build the website into _build/html
#   make test   run every test (lint, unit, labs, quick-mode build, headless browser)
#   make check  the fast tier: lint, unit tests of book/, static page checks (under two minutes)
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CHROMIUM ?= /usr/bin/chromium
# Warnings are errors; -n also reports broken cross-references.
BUILD_FLAGS := -W -n --keep-going
# Pages that write the book's reference measurements under data/ (book.data.publish).
DATA_PAGES := $(shell grep -l "data\.publish" chapters/*.md)

.PHONY: book test check lab serve data clean assignments fonts

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -r requirements.txt
	# JupyterLab opens the book's .md pages as notebooks (jupytext), for `make lab`.
	$(BIN)/jupytext-config --settings-file $(VENV)/share/jupyter/lab/settings/overrides.json set-default-viewer markdown myst
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(BIN)/pip install -r requirements-test.txt
	touch $@

book: $(VENV)/.installed
	$(BIN)/python -m book.labs student   # the website shows the labs' student versions
	$(BIN)/jupyter-book build . $(BUILD_FLAGS)

# Every lab's student release, autograder zip and solutions, into _build/assign/ (labs/README.md).
assignments: $(VENV)/.installed
	$(BIN)/python -m book.labs assign

# Everything CI runs; pytest ends with the time each stage took (tests/conftest.py).
test: $(VENV)/.installed-test $(CHROMIUM)
	BOOK_QUICK=1 $(BIN)/pytest

# The fast tier, for every edit: no site build, no lab grading, no browser.
check: $(VENV)/.installed-test
	BOOK_QUICK=1 $(BIN)/pytest -m "not build and not browser and not labs"

# Browser tests drive Debian's Chromium (no browser downloads).
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

lab: $(VENV)/.installed
	$(BIN)/jupyter lab

serve:
	$(PYTHON) -m http.server --bind 127.0.0.1 --directory _build/html 8000

# Re-measure the reference data on this machine (full sizes; run it when the machine is quiet).
data: $(VENV)/.installed
	for page in $(DATA_PAGES); do \
		BOOK_PUBLISH=1 $(BIN)/jupytext --execute --to ipynb --output $(VENV)/last_data_run.ipynb $$page || exit 1; \
	done
	rm -rf _build/.jupyter_cache

# The Korean web font, cut to the characters the pages use (book/fonts.py); run it when a page adds Korean.
fonts: $(VENV)/.installed
	$(BIN)/python -m book.fonts

clean:
	rm -rf _build labs/_student
