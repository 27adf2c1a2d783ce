# skyinspect — every set-up step lives here, so a fresh clone needs only `make demo` or `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
ARCH := $(shell uname -m)
# torch is pinned here, in the install step, not in pyproject: users pick their own build.
ifeq ($(ARCH),x86_64)
TORCH_PIN := torch==2.14.1 torchvision==0.29.1
else
TORCH_PIN := torch==2.9.1 torchvision==0.24.1
endif
PYTEST_ARGS ?=

.PHONY: setup browser test test-all bench demo models lint clean help

help:
	@echo "make setup     create .venv and install skyinspect (full + dev extras)"
	@echo "make demo      the main job on the embedded defaults"
	@echo "make test      the default test suite (slow tests excluded)"
	@echo "make test-all  every test, slow ones included"
	@echo "make bench     benchmarks; results in bench/results/"
	@echo "make models    retrain the default models shipped in models/"
	@echo "make lint      ruff"

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_PIN)
	$(PIP) install --quiet -e '.[full,dev]' $(TORCH_PIN)
	@touch $(STAMP)

# Debian's Chromium + ChromeDriver for the review app's browser tests (the tests fail under CI=true without them).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		echo "installing chromium and chromium-driver (Debian packages)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

test: setup browser
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: setup browser
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) -m bench $(BENCH_ARGS)

demo: setup
	$(PY) -m skyinspect.demo

models: setup
	$(PY) -m detection.default_models

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
