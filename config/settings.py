"""
Settings for the Channels showcase.

Every value a deployment might change comes from the environment, with a default that is safe
for a laptop: SQLite, the in-memory channel layer, DEBUG off unless asked for.
"""

import json
import math
import os
import socket
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.database import database_settings

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    """Read a yes/no environment variable; anything but a clear yes/no is an error."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false).")


def env_list(name: str, default: list[str]) -> list[str]:
    """Read a comma-separated environment variable."""
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


# ----------------------------------------------------------------------------- core
DEBUG = env_bool("DEBUG", False)

# The fallback keeps a local demo's sessions valid across restarts; `manage.py check --deploy`
# flags it, and a deployment sets SECRET_KEY.
SECRET_KEY = os.environ.get("SECRET_KEY") or "django-insecure-showcase-local-only"

# Origin checks on sockets read this list too (AllowedHostsOriginValidator), so it stays
# explicit: there is no wildcard default.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

# ----------------------------------------------------------------------------- apps
INSTALLED_APPS = [
    # daphne first: it replaces `runserver` with an ASGI server that also serves sockets.
    "daphne",
    "channels",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Failed logins, counted per username and address, with a cool-off (WS_LIMITS["login"]).
    "axes",
    "apps.core",
    "apps.echo_sync",
    "apps.echo_async",
    "apps.auth_ws",
    "apps.sse",
    "apps.jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a login refused for too many failures into the lockout page (HTTP 429).
    "axes.middleware.AxesMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.core.context_processors.showcase",
            ],
        },
    },
]

# ----------------------------------------------------------------------------- database
# DATABASE_URL names the database (config/database.py: its options for CONN_MAX_AGE,
# CONN_HEALTH_CHECKS and Django's pool); without it, SQLite in DATABASE_PATH (`make run`).
# `make cluster` runs its own PostgreSQL and sets DATABASE_URL for every process.
# The test runner and the browser suite's server processes must share one test database, so
# for SQLite it is a file too (an in-memory SQLite DB is invisible to another process); for
# PostgreSQL, TEST_DATABASE_NAME (else Django's test_<NAME>) on the same server.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
DATABASE_PATH = Path(os.environ.get("DATABASE_PATH", BASE_DIR / "db.sqlite3"))
DATABASES = {
    "default": database_settings(
        DATABASE_URL,
        sqlite_path=DATABASE_PATH,
        sqlite_test_path=Path(os.environ.get("TEST_DATABASE_PATH", BASE_DIR / "test-db.sqlite3")),
        test_name=os.environ.get("TEST_DATABASE_NAME", ""),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ----------------------------------------------------------------------------- channel layer
# No Redis: one process, messages in memory (`make run`). With Redis, channels-redis carries
# group messages between server processes. CHANNEL_LAYER=pubsub picks the Pub/Sub layer (lower
# latency, no per-channel queue, so no capacity and no backlog).
# Redis is named in one of two ways (apps/core/redis_clients.py, docs/settings.md): REDIS_URL,
# one server; or REDIS_SENTINELS ("host:port,host:port,..."), the Redis Sentinels that watch a
# primary and its replicas, which clients ask for the primary of REDIS_MASTER_NAME at every
# (re)connect, so a failover reaches them by itself (`make cluster`); REDIS_PASSWORD is the
# password of that group's servers and Sentinels.
from apps.core.redis_clients import layer_host, parse_sentinels  # noqa: E402

REDIS_URL = os.environ.get("REDIS_URL", "")
REDIS_SENTINELS = parse_sentinels(os.environ.get("REDIS_SENTINELS", ""))
REDIS_MASTER_NAME = os.environ.get("REDIS_MASTER_NAME") or "showcase"
REDIS_PASSWORD = os.environ.get("REDIS_PASSWORD", "")
if REDIS_URL and REDIS_SENTINELS:
    raise ImproperlyConfigured("set REDIS_URL or REDIS_SENTINELS, not both.")
CHANNEL_LAYER = os.environ.get("CHANNEL_LAYER", "core")
if CHANNEL_LAYER not in {"core", "pubsub"}:
    raise ImproperlyConfigured(f"CHANNEL_LAYER={CHANNEL_LAYER!r}: use 'core' or 'pubsub'.")

# Connections per pool: each process has two (the channel layer's, and the one the lobby's
# history, presence and the journal share), plus the Pub/Sub layer's two if chosen. A command
# that finds them all busy waits its turn instead of failing (redis-py's default pool raises
# at 100): 1,000 sockets leaving at once queue for them (docs/reliability.md, "Many sockets at
# once"). Redis serves one command at a time anyway, so a few connections per process keep it
# busy; the wait is what protects against a herd. At least 2: the layer's receive loop holds one.
REDIS_MAX_CONNECTIONS = int(os.environ.get("REDIS_MAX_CONNECTIONS") or 20)
if REDIS_MAX_CONNECTIONS < 2:
    raise ImproperlyConfigured("REDIS_MAX_CONNECTIONS must be 2 or more.")
# How long a command may wait for a free connection, in seconds; empty (the default): as long
# as it takes. Each connection in use is bounded by its own socket timeout, so the wait ends;
# a timeout here would turn a busy moment into what looks like an outage (the socket closes
# 4503, and a leave that gave up would leave its channel in the group).
REDIS_POOL_TIMEOUT = float(os.environ.get("REDIS_POOL_TIMEOUT") or 0) or None
# Each connection says which process (host and pid) and which pool opened it, so Redis's
# CLIENT LIST shows who holds how many: "<host>-<pid>.layer", "<host>-<pid>.app".
REDIS_CLIENT_NAME = f"{socket.gethostname()}-{os.getpid()}".replace(" ", "_")

if REDIS_URL or REDIS_SENTINELS:
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    # A restarted Redis leaves every pooled connection dead, and redis-py's default is not to
    # retry: each dead connection failed the next command that met it, and that socket closed
    # 1011 (apps/auth_ws/tests/test_faults.py). Reconnecting on the spot, a few times, heals it.
    REDIS_RETRY = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3)
    if REDIS_SENTINELS:
        # Behind Sentinel, "unreachable" is nearly always a failover under way: the old primary
        # gone, the replica not promoted yet (about 2-3 s here: docs/deploying.md). Clients
        # retry for REDIS_FAILOVER_SECONDS, so sockets, the worker and the lobby ride through it
        # instead of closing 4503 (or, for a consumer without outage handling, failing). The
        # default covers one lost election too: Sentinels whose first vote splits (likelier on
        # a busy machine) try again only after twice their failover-timeout (2 x 5 s,
        # deploy/sentinel.conf), so such a failover takes 12-13 s. A 10 s budget ran out first.
        REDIS_FAILOVER_SECONDS = float(os.environ.get("REDIS_FAILOVER_SECONDS") or 20)
        REDIS_RETRY = Retry(
            ExponentialBackoff(cap=0.5, base=0.05),
            retries=3 + max(0, math.ceil((REDIS_FAILOVER_SECONDS - 0.35) / 0.5)),
        )
    # RedisChannelLayer waits for messages with BZPOPMIN for up to 5 s, and redis-py 8's
    # default socket timeout is 5 s too: on a busy machine the empty reply lands just after
    # it, and the consumer's receive loop (or a runworker) died of a TimeoutError. Reads get
    # that wait plus a margin; a dead Redis is still noticed (and the retry above reconnects).
    REDIS_SOCKET_TIMEOUT = 15.0
    CHANNEL_LAYERS = {
        "default": {
            # Both are channels-redis's own layers; ours (apps/core/layers.py) only bounds the
            # core layer's connection pool and makes it wait. The Pub/Sub layer sends every
            # command of a process through one lock: at most two connections, never a herd.
            "BACKEND": (
                "channels_redis.pubsub.RedisPubSubChannelLayer"
                if CHANNEL_LAYER == "pubsub"
                else "apps.core.layers.RedisChannelLayer"
            ),
            "CONFIG": {
                "hosts": [
                    layer_host(
                        REDIS_URL,
                        REDIS_SENTINELS,
                        REDIS_MASTER_NAME,
                        REDIS_PASSWORD,
                        retry=REDIS_RETRY,
                        socket_timeout=REDIS_SOCKET_TIMEOUT,
                        client_name=f"{REDIS_CLIENT_NAME}.layer",
                    )
                ]
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# ----------------------------------------------------------------------------- auth
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Tests (and the browser suite's server) set FAST_PASSWORD_HASHER=1: PBKDF2 dominates a login.
if env_bool("FAST_PASSWORD_HASHER", False):
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Sessions live in the database, which every server process shares: a login on one process
# holds on all of them (Django's default engine, named here because the cluster relies on it).
SESSION_ENGINE = "django.contrib.sessions.backends.db"

# django-axes first: it refuses a locked-out username and address before any password check.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# ----------------------------------------------------------------------------- static files
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
# STATIC_MANIFEST=1 (`make cluster`): pages name each file by a hash of its content
# (console.3f2a….js), which `collectstatic` writes, so the proxy can let browsers cache them for
# a year. Off by default: `make run` and the tests need no collectstatic first.
if env_bool("STATIC_MANIFEST", False):
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }

# ----------------------------------------------------------------------------- i18n
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ----------------------------------------------------------------------------- logging
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # channels-redis logs a traceback a second while Redis is unreachable: one line instead.
    "filters": {
        "client_error": {"()": "apps.core.log_filters.ClientErrorWithoutTraceback"},
        "known_cancellation": {"()": "apps.core.log_filters.KnownCancellationWithoutTraceback"},
        "unreachable": {"()": "apps.core.outage.QuietWhenUnreachable"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["unreachable"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # daphne logs every HTTP request at INFO through its access log; keep it readable.
        "daphne": {"level": "WARNING"},
        # django-axes logs every login and logout at INFO; failures and lockouts are warnings.
        "axes": {"level": "WARNING"},
        # uvicorn logs a client's invalid UTF-8, and the responses it cancels when its
        # graceful shutdown runs out, with tracebacks of its own (log_filters.py).
        "uvicorn.error": {"filters": ["client_error", "known_cancellation"]},
        # asyncio on Python 3.11 logs hypercorn's cancelled connections as errors (log_filters.py).
        "asyncio": {"filters": ["known_cancellation"]},
    },
}

# ----------------------------------------------------------------------------- showcase
# The name of the host this process runs on, as `info` reports it: the machine's host name,
# unless the deployment names its hosts itself (`make cluster HOSTS=3` sets "a" and "b").
SHOWCASE_HOST = os.environ.get("SHOWCASE_HOST") or socket.gethostname()

# The subprotocol every endpoint agrees to when a client offers it (ws.protocol in the browser).
WS_SUBPROTOCOL = "showcase.v1"

# Every limit of the showcase, per endpoint kind (apps/core/limits.py, throttle.py,
# connections.py; docs/settings.md lists each). Per connection: over `max_message_bytes` the
# consumer closes with 4009 (limits.py says why not 1009); over the token bucket
# (`messages_per_second`, refilled smoothly, up to `burst` at once) with 4429. Daphne's own cap
# (`make run` sets 512 KiB, --websocket-max-message-size) applies before these.
# Per user and per client address (the name is the contract's; they cover streams and HTTP
# too): lobby messages per user whatever the path (shared through Redis by every process),
# open sockets and streams per user and per address (per server process), unfinished jobs per
# user (or address), sign-ups per address, failed logins per username and address (django-axes).
# 0 turns a limit off. WS_LIMITS in the environment, as JSON, overrides any of them, e.g. for
# load tests: WS_LIMITS='{"echo": {"messages_per_second": 0},
#                         "connections": {"per_user": 0, "per_address": 0}}'
WS_LIMITS: dict[str, dict[str, float]] = {
    "echo": {"max_message_bytes": 256 * 1024, "messages_per_second": 100, "burst": 200},
    "json": {"max_message_bytes": 64 * 1024, "messages_per_second": 50, "burst": 100},
    "lobby": {"max_message_bytes": 4 * 1024, "messages_per_second": 5, "burst": 10},
    # The `block` command of the JSON endpoints (apps/core/limits.py BlockBudget): seconds of
    # sleeping a socket may spend at once, and how fast that budget refills.
    "block": {"budget_seconds": 5, "refill_per_second": 0.1},
    # Chat messages of one user, over all their sockets and POST /http/lobby/say/.
    "lobby_per_user": {"messages_per_second": 1, "burst": 20},
    # Sockets and event streams open at once, per server process.
    "connections": {"per_user": 30, "per_address": 100},
    # Unfinished jobs of one user (anonymous: of one address); a hold lapses after an hour.
    "jobs_per_user": {"limit": 4, "hold_seconds": 3600},
    # New accounts from one address: `burst` at once, then `per_hour`.
    "signups_per_address": {"per_hour": 10, "burst": 3},
    # Failed logins for one username from one address before a lockout of `cooloff_seconds`.
    "login": {"failures": 5, "cooloff_seconds": 600},
}
for _kind, _overrides in json.loads(os.environ.get("WS_LIMITS") or "{}").items():
    WS_LIMITS[_kind] = {**WS_LIMITS.get(_kind, {}), **_overrides}

# Failed logins (django-axes, with its records in the database that every process shares):
# WS_LIMITS["login"]["failures"] wrong passwords for one username from one address lock that
# pair out for `cooloff_seconds`; others, and the same user from elsewhere, still log in. The
# address is REMOTE_ADDR only (daphne's scope["client"]; behind nginx, --proxy-headers make it
# the browser's): never a header the client could write itself.
AXES_ENABLED = WS_LIMITS["login"]["failures"] > 0
AXES_FAILURE_LIMIT = int(WS_LIMITS["login"]["failures"]) or 1
AXES_COOLOFF_TIME = timedelta(seconds=WS_LIMITS["login"]["cooloff_seconds"])
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "apps.auth_ws.views.client_address"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True

# How a sync consumer's `self.send` reaches the event loop (apps/core/consumers.py,
# QueuedSendMixin): "stock" is Channels' own async_to_sync, which waits for the loop; "queued"
# hands the message over and returns at once, in order. Queued is faster on a server with CPU to
# spare and slower on a core other processes crowd: docs/styles.md, "What each choice costs".
SYNC_SEND = os.environ.get("SYNC_SEND") or "stock"
if SYNC_SEND not in {"queued", "stock"}:
    raise ImproperlyConfigured(f"SYNC_SEND={SYNC_SEND!r}: use 'queued' or 'stock'.")

# The garbage collector's thresholds in every process that sets Django up (apps/core/apps.py).
# Python's (700, 10, 10) collect the oldest generation whenever enough objects that were merely
# in flight get promoted: with 1,000 sockets a full pass takes ~120 ms and found nothing to free,
# and it struck every fourth lobby broadcast, which was the broadcast's p99 (docs/benchmarks.md).
# Collecting the young generation every 50,000 allocations instead of every 700 leaves those
# objects time to die young. GC_THRESHOLD="" keeps Python's own.
GC_THRESHOLD = tuple(int(n) for n in os.environ.get("GC_THRESHOLD", "50000,10,10").split(",") if n)
if GC_THRESHOLD and len(GC_THRESHOLD) != 3:
    raise ImproperlyConfigured(f"GC_THRESHOLD={GC_THRESHOLD!r}: three integers, or empty.")

# The event journal (apps/core/journal.py) records the ASGI events of connections that ask
# for it with ?journal=<id>, on these paths only, so a page can show what the consumer saw.
JOURNAL_PATH_PREFIXES = ("/ws/sc/", "/ws/ac/", "/ws/auth/", "/ws/jobs/")

# The lobby's presence entries (apps/auth_ws/presence.py) expire this many seconds after their
# socket's last heartbeat (sent every third of it), so a server process that dies without
# saying goodbye drops out of "who is online" by itself. Tests shorten it.
PRESENCE_TTL = float(os.environ.get("PRESENCE_TTL") or 30)

# `/stats/` (apps/core/stats.py): live consumer instances, asyncio tasks, threads and memory of
# the server process, for the chaos soak (`make soak SOAK_MODE=chaos`). Off by default: a
# normal run answers 404 there.
SHOWCASE_STATS = env_bool("SHOWCASE_STATS", False)

# Server-Sent Events (apps/sse): one tick every SSE_TICK_SECONDS on /sse/ticks/; the `retry:`
# hint tells EventSource how long to wait before it reconnects; a comment line every
# SSE_KEEPALIVE_SECONDS keeps proxies from cutting a quiet stream. Tests shorten all three.
SSE_TICK_SECONDS = float(os.environ.get("SSE_TICK_SECONDS") or 1)
SSE_RETRY_MS = int(os.environ.get("SSE_RETRY_MS") or 2000)
SSE_KEEPALIVE_SECONDS = float(os.environ.get("SSE_KEEPALIVE_SECONDS") or 15)
# How often a lobby stream re-checks that its session still logs the user in (logout ends it).
SSE_SESSION_CHECK_SECONDS = float(os.environ.get("SSE_SESSION_CHECK_SECONDS") or 10)

# The background worker (apps/jobs). With the in-memory layer (no Redis) only this process
# can read the "jobs" channel, so the server runs the worker itself; with Redis, a separate
# `manage.py runworker jobs` does (JOBS_IN_PROCESS=1 forces the in-process worker anyway).
JOBS_IN_PROCESS = env_bool("JOBS_IN_PROCESS", not (REDIS_URL or REDIS_SENTINELS))
JOBS_MAX_N = int(os.environ.get("JOBS_MAX_N") or 2_000_000)  # count primes up to this, at most
JOBS_PER_SOCKET = int(os.environ.get("JOBS_PER_SOCKET") or 2)  # unfinished jobs per socket
# At most JOBS_QUEUE_LIMIT unfinished jobs (queued or running) over every socket and process;
# more are refused `queue_full` (0: no limit, for load tests). A socket renews its jobs' leases
# every third of JOBS_LEASE_SECONDS: a job whose socket closed is cancelled at once, one whose
# server process died without a word once its lease runs out (apps/jobs/queue.py).
JOBS_QUEUE_LIMIT = int(os.environ.get("JOBS_QUEUE_LIMIT") or 10)
JOBS_LEASE_SECONDS = float(os.environ.get("JOBS_LEASE_SECONDS") or 15)

# ----------------------------------------------------------------------------- HTTPS
# HTTPS=1 behind a proxy that terminates TLS (docs/deploying.md): cookies only over HTTPS,
# HTTP redirected, HSTS. The proxy must overwrite X-Forwarded-Proto (deploy/nginx.conf does), or
# a client could claim HTTPS itself. Off, `manage.py check --deploy` reports exactly these.
if env_bool("HTTPS", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS") or 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # Joining browsers' preload list is a separate, hard-to-undo decision: not made here.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]

# The lobby's chat history (apps/core/lobby.py) keeps this many messages for sockets that
# resume after a reconnect; docs/reliability.md ("The lobby resumes") says why 1000. Tests
# shorten it.
LOBBY_HISTORY = int(os.environ.get("LOBBY_HISTORY") or 1000)
# A chat message counts as stored, and is announced to the lobby, only once LOBBY_REPLICAS
# Redis replicas have it (Redis's WAIT, for up to LOBBY_REPLICA_WAIT_MS): a failover then loses
# no message the lobby announced. Unset: 1 behind Sentinel (REDIS_SENTINELS), 0 otherwise. A
# message no replica confirms in time is withdrawn, and its sender gets `chat_not_saved`.
LOBBY_REPLICAS = int(os.environ["LOBBY_REPLICAS"]) if os.environ.get("LOBBY_REPLICAS") else None
LOBBY_REPLICA_WAIT_MS = int(os.environ.get("LOBBY_REPLICA_WAIT_MS") or 1000)
# What a fresh lobby client (a socket without `?after=`, a stream without Last-Event-ID) gets
# before live messages: the newest this many from that history, the same for both kinds.
LOBBY_RECENT = int(os.environ.get("LOBBY_RECENT") or 50)
