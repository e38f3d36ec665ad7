"""
`DATABASE_URL` in, Django's `DATABASES["default"]` out (config/settings.py).

No URL: SQLite in a file, the embedded default of `make run`. A URL is parsed by
dj-database-url, except for the options that are Django's rather than the driver's, which this
module takes out of the query string first (dj-database-url would hand them to psycopg, which
refuses unknown options):

    postgres://user:password@host:5432/name?conn_max_age=60&conn_health_checks=true
    postgres://user:password@host:5432/name?pool=true&pool_max_size=4&conn_health_checks=true

- `conn_max_age`: seconds a thread keeps its connection (Django's CONN_MAX_AGE; 0, the default,
  closes it after every request or consumer handler; `none` keeps it for ever).
- `conn_health_checks`: test a reused connection before its first query (CONN_HEALTH_CHECKS);
  with the pool, the pool checks each connection it hands out.
- `pool`: Django's connection pool (PostgreSQL, Django 5.1+), `OPTIONS["pool"]`; with
  `pool_min_size`, `pool_max_size`, `pool_timeout` and `pool_max_idle` passed to psycopg's
  ConnectionPool. It cannot be combined with `conn_max_age`.

Every other query option goes to the driver (e.g. `sslmode`, `application_name`).
docs/styles.md, "Database connections", says which to choose for long-lived sockets, and why.
"""

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

SQLITE = "django.db.backends.sqlite3"
POSTGRESQL = "django.db.backends.postgresql"
# Query options that are Django's, not the driver's.
POOL_OPTIONS = {"pool_min_size", "pool_max_size", "pool_timeout", "pool_max_idle"}
DJANGO_OPTIONS = {"conn_max_age", "conn_health_checks", "pool", *POOL_OPTIONS}


def database_settings(
    url: str, sqlite_path: Path, sqlite_test_path: Path, test_name: str = ""
) -> dict[str, Any]:
    """
    The `DATABASES["default"]` entry for `url` (SQLite at `sqlite_path` when empty). Tests put
    the test database where server subprocesses can reach it: a file for SQLite
    (`sqlite_test_path`), `test_name` (else Django's `test_<NAME>`) on a database server.
    """
    if not url:
        config: dict[str, Any] = {"ENGINE": SQLITE, "NAME": sqlite_path}
    else:
        config = from_url(url)
    if config["ENGINE"] == SQLITE:
        config["TEST"] = {"NAME": sqlite_test_path}
    else:
        # Named here (Django's own default), so the browser suite can check that its servers
        # run on the test database: NAME becomes TEST's NAME once pytest-django made it.
        config["TEST"] = {"NAME": test_name or f"test_{config['NAME']}"}
    if config["ENGINE"] == POSTGRESQL:
        # pg_stat_activity's application_name then tells which process holds a connection.
        config.setdefault("OPTIONS", {}).setdefault("application_name", f"showcase:{os.getpid()}")
    return config


def from_url(url: str) -> dict[str, Any]:
    """Parse a DATABASE_URL, Django's own options included (see the module's docstring)."""
    # Split by hand: urllib's round trip turns sqlite:////abs/path into a relative path.
    base, _, raw_query = url.partition("?")
    query = parse_qsl(raw_query, keep_blank_values=True)
    ours = {key: value for key, value in query if key in DJANGO_OPTIONS}
    driver = urlencode([(key, value) for key, value in query if key not in DJANGO_OPTIONS])
    config = dj_database_url.parse(
        f"{base}?{driver}" if driver else base,
        conn_max_age=max_age(ours.get("conn_max_age", "0")),
        conn_health_checks=boolean("conn_health_checks", ours.get("conn_health_checks", "false")),
    )
    pool = pool_options(ours)
    if pool is not None:
        if config["ENGINE"] != POSTGRESQL:
            raise ImproperlyConfigured("DATABASE_URL: the pool is PostgreSQL's (psycopg 3).")
        if config["CONN_MAX_AGE"] != 0:
            raise ImproperlyConfigured(
                "DATABASE_URL: pool and conn_max_age exclude each other (the pool keeps the "
                "connections; Django closes its handle after each request)."
            )
        config.setdefault("OPTIONS", {})["pool"] = pool
    return config


def max_age(value: str) -> int | None:
    """CONN_MAX_AGE from the URL: whole seconds, or `none` for connections kept for ever."""
    if value.lower() == "none":
        return None
    if not value.isdigit():
        raise ImproperlyConfigured(f"DATABASE_URL: conn_max_age={value!r}: seconds, or none.")
    return int(value)


def boolean(name: str, value: str) -> bool:
    """A yes/no option of the URL."""
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"DATABASE_URL: {name}={value!r} is not a boolean.")


def pool_options(ours: dict[str, str]) -> bool | dict[str, float] | None:
    """`OPTIONS["pool"]`: None without a pool, True for psycopg's defaults, else its sizes."""
    sizes = {key: value for key, value in ours.items() if key in POOL_OPTIONS}
    if not boolean("pool", ours.get("pool", "true" if sizes else "false")):
        if sizes:
            raise ImproperlyConfigured(f"DATABASE_URL: {', '.join(sizes)} without the pool.")
        return None
    if not sizes:
        return True
    options: dict[str, float] = {}
    for key, value in sizes.items():
        try:
            number = float(value) if key in {"pool_timeout", "pool_max_idle"} else int(value)
        except ValueError:
            raise ImproperlyConfigured(f"DATABASE_URL: {key}={value!r} is not a number.") from None
        options[key.removeprefix("pool_")] = number
    if "max_size" in options and "min_size" not in options:
        # psycopg's min_size defaults to 4 and refuses a max_size below it.
        options["min_size"] = min(4, int(options["max_size"]))
    return options
