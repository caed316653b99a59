# The two commands a new user needs: `make demo` and `make test`.
# Both create .venv and install the project into it from pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint unit bench clean install system-deps messages

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
	$(BIN)/mypy bench  # scripts that import each other by name: not a package
	$(BIN)/lint-imports

# Two processes, a test file each at a time (tests in one file share its servers).
unit: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# Tests that need a system program: the dashboard's browser test drives Debian's
# chromium, the compose test asks docker-compose to validate the file, and the
# feed-reader test polls the served feeds with Debian's newsboat.
# Installed where apt-get works as root; anywhere else those tests skip and say why.
SYSTEM_DEPS := /usr/bin/chromium:chromium /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc:fonts-noto-cjk /usr/bin/docker-compose:docker-compose /usr/bin/newsboat:newsboat
system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do \
		[ -e "$${dep%%:*}" ] || missing="$$missing $${dep#*:}"; done; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" -eq 0 ]; then \
		echo "installing$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null || \
		echo "could not install$$missing: the tests that need them will be skipped"; \
	fi

test: lint system-deps unit

# Translations (README, "Languages"): collect every marked message into the template,
# then merge it into each language's catalogue for its translator to fill in.
# Catalogues compile at first use; `pybabel compile` is optional.
MESSAGE_KEYWORDS := -k _ -k N_ -k Phrase -k t -k InputError:2 -k ApiError:3
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg $(MESSAGE_KEYWORDS) --no-location --sort-output \
		--project publisher -o publisher/locale/publisher.pot .
	$(BIN)/pybabel update -i publisher/locale/publisher.pot -d publisher/locale -D publisher \
		--no-fuzzy-matching --ignore-obsolete

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) var test-output
