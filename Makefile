# The two commands a new user needs: `make demo` and `make test`.
# Both create .venv and install the project into it from pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint unit bench clean install system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/publisher demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest -q

# Tests that need a system program: the dashboard's browser test drives Debian's
# chromium, the compose test asks docker-compose to validate the file, and the
# feed-reader test polls the served feeds with Debian's newsboat.
# Installed where apt-get works as root; anywhere else those tests skip and say why.
SYSTEM_DEPS := /usr/bin/chromium:chromium /usr/bin/docker-compose:docker-compose /usr/bin/newsboat:newsboat
system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do \
		[ -x "$${dep%%:*}" ] || missing="$$missing $${dep#*:}"; done; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" -eq 0 ]; then \
		echo "installing$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null || \
		echo "could not install$$missing: the tests that need them will be skipped"; \
	fi

test: lint system-deps unit

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) var test-output
