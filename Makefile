# The two commands the README promises: `make run` and `make test`. Everything they need,
# system packages included, is installed by these targets.

PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
SERVER ?= daphne
BIN := $(VENV)/bin
# Each server's flags (message caps, pings, timeouts) live in one place, tools/servers.py's
# SERVER_FLAGS, used by `make run`, the tests, the bench and the conformance run alike; the
# docs/security.md ("Limits") and docs/browser-and-servers.md ("Which ASGI server?") say why.
# `python -m tools.servers flags daphne` prints daphne's.
DAPHNE_FLAGS ?= $(shell $(BIN)/python -m tools.servers flags daphne)

.PHONY: run test unit e2e lint compat system-deps install clean bench soak \
	conformance conformance-quick screenshots cluster cluster-restart bench-cluster storm

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
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing:$$missing. On Debian/Ubuntu run: sudo apt-get install -y$$missing"; \
	    echo "Elsewhere install a redis-server, nginx, and Chromium or: $(BIN)/playwright install chromium"; \
	    exit 1; \
	  fi; \
	fi

# ---------------------------------------------------------------- the showcase
run: install
	$(BIN)/python manage.py migrate --no-input -v 0
	DEBUG=$${DEBUG-1} $(BIN)/python manage.py ensure_demo_users
	DEBUG=$${DEBUG-1} $(BIN)/python -m tools.servers run $(SERVER) --host $(HOST) --port $(PORT)

# One picture per demo page for the README (docs/screenshots/*.png), taken by the browser
# harness from a throwaway daphne and database, so they never go stale (about 20 s).
screenshots: install system-deps
	$(BIN)/python -m tools.screenshots

# ---------------------------------------------------------------- as deployed (docs/deploying.md)
# nginx on 127.0.0.1:PORT (8080 here, unless PORT is given) in front of WORKERS daphne
# processes, a Channels worker and a redis-server under supervisord (deploy/), in the
# foreground: Ctrl-C stops all of it. Run files, logs and the generated SECRET_KEY: .cluster/.
WORKERS ?= 2
CLUSTER_PORT = $(if $(filter command line environment,$(origin PORT)),$(PORT),8080)
cluster: install system-deps
	$(BIN)/python -m tools.cluster --workers $(WORKERS) --port $(CLUSTER_PORT) \
	  --daphne-args="$(DAPHNE_FLAGS)"

# Restart the running cluster's daphne processes one at a time: browsers reconnect to the others.
cluster-restart: install
	$(BIN)/python -m tools.cluster restart

# ---------------------------------------------------------------- load (127.0.0.1 only, bounded)
# Styles, servers and channel layers side by side, with ceilings: a few minutes, then
# docs/benchmarks.md and docs/benchmarks.png. BENCH_ARGS="--seconds 1" for a quick look.
bench: install system-deps
	$(BIN)/python -m bench --daphne-args="$(DAPHNE_FLAGS)" $(BENCH_ARGS)

# nginx's cost, 1 vs 2 daphne processes, 2,000 sockets through nginx, a broadcast to 1,000
# sockets over both processes (about two minutes); writes its section of docs/benchmarks.md.
bench-cluster: install system-deps
	$(BIN)/python -m bench.cluster --daphne-args="$(DAPHNE_FLAGS)" $(BENCH_ARGS)

# 1,000 logged-in lobby sockets (50 users x 20 tabs) through a cluster of its own: every socket
# reset at once, then nginx restarted under them. All must come back and resume with nothing
# lost, no 502 and no traceback (bench/storm.py; a few minutes on a quiet machine; it stops by
# itself). STORM_ARGS="--users 10 --rounds reset" for a small one.
STORM_ARGS ?=
storm: install system-deps
	$(BIN)/python -m bench.storm --daphne-args="$(DAPHNE_FLAGS)" $(STORM_ARGS)

# 1,000 sockets on the six echo endpoints of a daphne started with the flags of `make run`,
# for SOAK_SECONDS: every message must come back once, in order, and daphne's log stays free of
# tracebacks. SOAK_MODE=chaos: a fraction SOAK_CHAOS of the sockets drop abruptly and reconnect
# every second, and nothing may leak (e.g. make soak SOAK_MODE=chaos SOAK_SECONDS=60
# SOAK_ARGS="--sockets 500"). SOAK_ARGS passes anything else to `python -m bench.soak`.
SOAK_SECONDS ?= 120
SOAK_MODE ?= steady
SOAK_CHAOS ?= 0.2
SOAK_ARGS ?=
soak: install
	$(BIN)/python -m bench.soak --seconds $(SOAK_SECONDS) --daphne-args="$(DAPHNE_FLAGS)" \
	  $(if $(filter chaos,$(SOAK_MODE)),--chaos $(SOAK_CHAOS)) $(SOAK_ARGS)

# ---------------------------------------------------------------- protocol conformance
# The Autobahn testsuite is Python 2 code: it runs under a Python 2.7 (on PATH, or pyenv's),
# with its dependencies installed once into a directory of their own (.make/ is gitignored).
AUTOBAHN_DIR := .make/autobahn
PYTHON2 ?= $(shell for py in python2.7 $$(ls -d $$(pyenv root 2>/dev/null)/versions/2.7*/bin/python 2>/dev/null); do \
	$$py -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null && { command -v $$py; break; }; done)

$(AUTOBAHN_DIR)/.installed:
	@test -n "$(PYTHON2)" || { echo "conformance: needs a Python 2.7 (e.g. pyenv install 2.7.18)"; exit 1; }
	rm -rf $(AUTOBAHN_DIR)
	$(PYTHON2) -m pip install --quiet --disable-pip-version-check --target $(AUTOBAHN_DIR) \
	  autobahntestsuite==0.8.2
	touch $@

# Cases 1-7, 9 and 10 on every pure-echo endpoint (about 10 minutes per server), on the four
# servers, or on one with `make conformance SERVER=uvicorn`; writes docs/conformance.md.
# CONFORMANCE_ARGS="--groups 1-7,10" leaves out group 9 (its 16 MiB messages take most of it).
CONFORMANCE_SERVERS ?= $(if $(filter command line,$(origin SERVER)),$(SERVER),daphne,uvicorn,hypercorn,granian)
conformance: install $(AUTOBAHN_DIR)/.installed
	$(BIN)/python -m conformance.run --python2 $(PYTHON2) --libdir $(AUTOBAHN_DIR) \
	  --servers $(CONFORMANCE_SERVERS) --markdown docs/conformance.md $(CONFORMANCE_ARGS)

# The quick groups (not 9: its two timed-out empty-message cases alone take two minutes) on one
# sync and one async endpoint, inside `make test`; skipped, saying so, without a Python 2.7.
conformance-quick: install
	@if [ -z "$(PYTHON2)" ]; then \
	  echo "conformance-quick: no Python 2.7 here, Autobahn cases skipped"; exit 0; fi; \
	$(MAKE) --no-print-directory $(AUTOBAHN_DIR)/.installed && \
	$(BIN)/python -m conformance.run --python2 $(PYTHON2) --libdir $(AUTOBAHN_DIR) \
	  --servers daphne --groups 1-7,10 --paths /ws/sc/,/ws/ac/generic/ --timeout 300

# ---------------------------------------------------------------- tests
# The conformance step, the unit tests and their Python 3.12+ run are independent and spend
# most of their time waiting on servers and timers, so they run side by side (each one's
# output kept whole). Browser tests last: their pytest summary is the closing line CI reads.
test: install system-deps lint
	$(MAKE) --no-print-directory -j3 --output-sync=target conformance-quick unit compat
	$(MAKE) --no-print-directory e2e

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
	TEST_DATABASE_PATH=$(CURDIR)/test-db-compat.sqlite3 \
	  $(MAKE) --no-print-directory unit PYTHON=$$py VENV=.venv-compat

clean:
	rm -rf $(VENV) .venv-compat artifacts test-results .pytest_cache .make .cluster staticfiles
