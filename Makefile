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
	conformance conformance-quick screenshots cluster cluster-restart cluster-failover \
	bench-cluster bench-hosts test-faults storm

# ---------------------------------------------------------------- set-up
# uv installs the lock's pins in seconds where pip takes a minute (twice per `make test`: the
# Python 3.12+ run has an environment of its own); uv itself is pinned, installed by pip.
UV_VERSION := 0.13.9
$(BIN)/.installed: requirements/lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements/lock.txt
	touch $@

# Bytecode is compiled ahead, the packages' at install and ours here (a no-op when up to date):
# where PYTHONDONTWRITEBYTECODE is set, as on CI machines of this kind, every Python process
# would otherwise compile Django, Twisted and the project from source. A test run starts some
# hundred of them (servers, workers, pytest's own); a daphne's start took 1.9 s of CPU instead
# of 0.6 s, and `make test` twice as long (docs/testing.md, "Costs").
install: $(BIN)/.installed
	@$(BIN)/python -m compileall -q apps bench conformance config e2e tools >/dev/null

# Debian's Chromium (Playwright cannot download its own here), Firefox ESR and WebKitGTK's
# WebDriver with a virtual display for the browser tests' other engines, and the redis-server,
# nginx and PostgreSQL that the tests and `make cluster` start themselves (never the system
# services). As root this installs them; otherwise it says what to run. Without root, a missing
# Firefox or WebKit is not fatal: their tests skip, naming what to install.
system-deps:
	@missing=""; engines=""; \
	command -v chromium >/dev/null || [ -x /usr/lib/chromium/chromium ] || missing="$$missing chromium"; \
	command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || missing="$$missing redis-server"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  missing="$$missing postgresql"; \
	command -v ip >/dev/null || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing="$$missing iproute2"; \
	command -v firefox-esr >/dev/null || command -v firefox >/dev/null || engines="$$engines firefox-esr"; \
	command -v WebKitWebDriver >/dev/null || engines="$$engines webkit2gtk-driver"; \
	command -v Xvfb >/dev/null || engines="$$engines xvfb"; \
	command -v xauth >/dev/null || engines="$$engines xauth"; \
	if [ -n "$$missing$$engines" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing:$$missing$$engines"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing $$engines; \
	elif [ -n "$$missing" ]; then \
	  echo "missing:$$missing. On Debian/Ubuntu run: sudo apt-get install -y$$missing"; \
	  echo "Elsewhere install a redis-server, nginx, PostgreSQL, and Chromium or: $(BIN)/playwright install chromium"; \
	  exit 1; \
	elif [ -n "$$engines" ]; then \
	  echo "optional:$$engines missing: the browser tests in Firefox and WebKit will skip"; \
	  echo "(Debian/Ubuntu: sudo apt-get install -y$$engines)"; \
	fi

# ---------------------------------------------------------------- the showcase
# DEBUG (on unless DEBUG=0) is refused on a HOST other machines can reach, before anything
# else runs (tools/servers.py, debug_refusal; ALLOW_DEBUG_ON_PUBLIC_HOST=1 overrides).
run: install
	DEBUG=$${DEBUG-1} $(BIN)/python -m tools.servers check $(SERVER) --host $(HOST)
	$(BIN)/python manage.py migrate --no-input -v 0
	DEBUG=$${DEBUG-1} $(BIN)/python manage.py ensure_demo_users
	DEBUG=$${DEBUG-1} $(BIN)/python -m tools.servers run $(SERVER) --host $(HOST) --port $(PORT)

# One picture per demo page for the README (docs/screenshots/*.png), taken by the browser
# harness from a throwaway daphne and database, so they never go stale (about 20 s).
screenshots: install system-deps
	$(BIN)/python -m tools.screenshots

# ---------------------------------------------------------------- as deployed (docs/deploying.md)
# nginx on 127.0.0.1:PORT (8080 here, unless PORT is given) in front of WORKERS daphne
# processes, a Channels worker, PostgreSQL, and Redis as a primary, a replica and three Sentinels
# under supervisord (deploy/), in the foreground: Ctrl-C stops all of it. Run files, logs, the
# generated SECRET_KEY and database password, and PostgreSQL's data directory: .cluster/
# (DATABASE_URL=... uses that database). HOSTS=3 (as root): daphne on hosts "a" and "b",
# PostgreSQL, Redis and its Sentinels on "c", each host a network namespace of its own;
# NETEM_DELAY=2ms adds that much latency between hosts, each way.
WORKERS ?= 2
HOSTS ?= 1
NETEM_DELAY ?=
CLUSTER_PORT = $(if $(filter command line environment,$(origin PORT)),$(PORT),8080)
cluster: install system-deps
	$(BIN)/python -m tools.cluster --workers $(WORKERS) --port $(CLUSTER_PORT) \
	  --hosts $(HOSTS) --delay "$(NETEM_DELAY)" --daphne-args="$(DAPHNE_FLAGS)"

# Restart the running cluster's daphne processes one at a time: browsers reconnect to the others.
cluster-restart: install
	$(BIN)/python -m tools.cluster restart

# SIGKILL the running cluster's Redis primary; print it, the replica Sentinel promotes, and the
# killed server rejoining as a replica once supervisord has restarted it.
cluster-failover: install
	$(BIN)/python -m tools.cluster failover

# ---------------------------------------------------------------- load (127.0.0.1 only, bounded)
# Styles, servers and channel layers side by side, with ceilings: a few minutes, then
# docs/benchmarks.md and docs/benchmarks.png. BENCH_ARGS="--seconds 1" for a quick look.
bench: install system-deps
	$(BIN)/python -m bench --daphne-args="$(DAPHNE_FLAGS)" $(BENCH_ARGS)

# nginx's cost, 1 vs 2 daphne processes, 2,000 sockets through nginx, a broadcast to 1,000
# sockets over both processes (about two minutes); writes its section of docs/benchmarks.md.
bench-cluster: install system-deps
	$(BIN)/python -m bench.cluster --daphne-args="$(DAPHNE_FLAGS)" $(BENCH_ARGS)

# make cluster HOSTS=3's figures for docs/deploying.md (as root, a few minutes): fan-out to 1,000
# sockets over hosts a and b at 0, 2 and 10 ms between hosts, handshakes through nginx, and 20
# Redis failovers during chat (messages acknowledged and lost). BENCH_ARGS="--members 100
# --handshakes 200 --failovers 2 --delays 0,2" for a quick look.
bench-hosts: install system-deps
	$(BIN)/python -m bench.hosts $(BENCH_ARGS)

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

# UNIT_WORKERS processes side by side (pytest-xdist), each with its own test database, Redis and
# PostgreSQL: most tests wait on servers, timers and failovers. UNIT_WORKERS=0: one process.
UNIT_WORKERS ?= 2
unit: install
	$(BIN)/pytest apps -n $(UNIT_WORKERS) --durations=10

# A separate pytest run: sync Playwright and pytest-asyncio break each other in one process.
# E2E_WORKERS processes side by side (pytest-xdist): the tests mostly wait on servers and
# timers. Firefox's and WebKit's tests run in one of them (one launch each); Chromium's spread
# over all. Each process has its own servers and its own test database. Where system-deps can
# install the engines (root with apt-get) or in CI, a missing engine fails the run instead of
# skipping (SHOWCASE_REQUIRE_ENGINES). E2E_WORKERS=0: one process.
E2E_WORKERS ?= 3
REQUIRE_ENGINES ?= $(shell [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && echo 1)
e2e: install system-deps
	SHOWCASE_REQUIRE_ENGINES=$(REQUIRE_ENGINES) TEST_DATABASE_PATH=$(CURDIR)/test-db-e2e.sqlite3 \
	  $(BIN)/pytest e2e -n $(E2E_WORKERS) --dist loadgroup --durations=15 \
	  --ignore=e2e/hosts

# The slow fault scenarios, beside `make test` (CI runs both; docs/testing.md): `make cluster
# HOSTS=3` itself, started once (network namespaces: as root), the walk across hosts, kill -9 of
# host b's daphne processes, a Redis failover during chat, and nothing left after its Ctrl-C.
test-faults: install system-deps
	$(BIN)/pytest e2e/hosts

# The unit tests again on Python 3.12+ (Django 6.x), when such an interpreter exists here, and
# on PostgreSQL: a throwaway server on a free port (tools/servers.py with-postgres), stopped and
# removed afterwards. (`make unit`, on SQLite, runs the tests that depend on the database on a
# PostgreSQL of its own as well: apps/core/tests/databases.py.)
compat:
	@py=""; for candidate in python3.13 python3.12 \
	    $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.1[23]*/bin/python3 2>/dev/null); do \
	  if $$candidate -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	    py=$$(command -v $$candidate); break; fi; \
	done; \
	if [ -z "$$py" ]; then echo "compat: no Python 3.12+ here, skipped"; exit 0; fi; \
	echo "compat: unit tests on $$($$py --version), on PostgreSQL"; \
	$(MAKE) --no-print-directory install PYTHON=$$py VENV=.venv-compat && \
	  .venv-compat/bin/python -m tools.servers with-postgres -- \
	  $(MAKE) --no-print-directory unit PYTHON=$$py VENV=.venv-compat

clean:
	rm -rf $(VENV) .venv-compat artifacts test-results .pytest_cache .make .cluster staticfiles
