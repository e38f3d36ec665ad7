# The two commands the README promises: `make run` and `make test`. Everything they need,
# system packages included, is installed by these targets.

PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
SERVER ?= daphne
BIN := $(VENV)/bin
# Daphne's own limits, set on purpose (see the README's "Limits" section).
DAPHNE_FLAGS ?= --websocket_timeout 86400 --ping-interval 20 --ping-timeout 30 \
	--websocket_connect_timeout 5 --application-close-timeout 10
APT_PACKAGES := chromium redis-server

.PHONY: run test unit e2e lint compat system-deps install clean

# ---------------------------------------------------------------- set-up
$(BIN)/.installed: requirements/lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/lock.txt
	touch $@

install: $(BIN)/.installed

# Debian's Chromium (Playwright cannot download its own here) and a redis-server the tests
# start themselves. As root this installs them; otherwise it says what to run.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || [ -x /usr/lib/chromium/chromium ] || missing="$$missing chromium"; \
	command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing:$$missing. On Debian/Ubuntu run: sudo apt-get install -y$$missing"; \
	    echo "Elsewhere install a redis-server, and Chromium or: $(BIN)/playwright install chromium"; \
	    exit 1; \
	  fi; \
	fi

# ---------------------------------------------------------------- the showcase
run: install
	$(BIN)/python manage.py migrate --no-input -v 0
ifeq ($(SERVER),uvicorn)
	DEBUG=$${DEBUG-1} $(BIN)/uvicorn --host $(HOST) --port $(PORT) config.asgi:application
else
	DEBUG=$${DEBUG-1} $(BIN)/daphne -b $(HOST) -p $(PORT) $(DAPHNE_FLAGS) config.asgi:application
endif

# ---------------------------------------------------------------- tests
test: install system-deps lint unit e2e compat

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: install
	$(BIN)/pytest apps

# A separate pytest run: sync Playwright and pytest-asyncio break each other in one process.
e2e: install system-deps
	$(BIN)/pytest e2e

# The unit tests again on Python 3.12+ (Django 6.x), when such an interpreter exists here.
compat:
	@py=""; for candidate in python3.13 python3.12 \
	    $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.1[23]*/bin/python3 2>/dev/null); do \
	  if $$candidate -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	    py=$$(command -v $$candidate); break; fi; \
	done; \
	if [ -z "$$py" ]; then echo "compat: no Python 3.12+ here, skipped"; exit 0; fi; \
	echo "compat: unit tests on $$($$py --version)"; \
	$(MAKE) --no-print-directory unit PYTHON=$$py VENV=.venv-compat

clean:
	rm -rf $(VENV) .venv-compat artifacts test-results .pytest_cache
