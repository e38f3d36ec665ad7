"""DATABASE_URL (config/database.py): SQLite by default, Django's connection options in the URL."""

import os
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.database import database_settings, from_url
from tools.servers import database_env

SQLITE_PATH, SQLITE_TEST_PATH = Path("/data/db.sqlite3"), Path("/data/test-db.sqlite3")
URL = "postgres://showcase:p%40ss@127.0.0.1:5433/showcase"


def settings_for(url: str, test_name: str = "") -> dict:
    return database_settings(url, SQLITE_PATH, SQLITE_TEST_PATH, test_name)


def test_no_url_is_sqlite_with_a_test_database_in_a_file() -> None:
    config = settings_for("")
    assert config == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": SQLITE_PATH,
        # The browser suite's server processes open the same file.
        "TEST": {"NAME": SQLITE_TEST_PATH},
    }


def test_a_postgres_url_is_parsed_with_the_driver_options_kept() -> None:
    config = settings_for(URL + "?sslmode=disable&connect_timeout=5", test_name="test_x")
    assert {k: config[k] for k in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT")} == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "showcase",
        "USER": "showcase",
        "PASSWORD": "p@ss",
        "HOST": "127.0.0.1",
        "PORT": 5433,
    }
    assert (config["CONN_MAX_AGE"], config["CONN_HEALTH_CHECKS"]) == (0, False)  # Django's
    assert config["OPTIONS"]["sslmode"] == "disable"
    assert config["OPTIONS"]["connect_timeout"] == 5
    assert config["TEST"] == {"NAME": "test_x"}
    assert settings_for(URL)["TEST"] == {"NAME": "test_showcase"}  # Django's default, spelled out


def test_each_process_names_itself_to_postgresql() -> None:
    assert settings_for(URL)["OPTIONS"]["application_name"] == f"showcase:{os.getpid()}"
    assert settings_for(URL + "?application_name=mine")["OPTIONS"]["application_name"] == "mine"


@pytest.mark.parametrize(
    ("query", "max_age", "checks"),
    [
        ("conn_max_age=60", 60, False),
        ("conn_max_age=60&conn_health_checks=true", 60, True),
        ("conn_max_age=none&conn_health_checks=1", None, True),
        ("conn_health_checks=off", 0, False),
    ],
)
def test_persistent_connections_and_health_checks(
    query: str, max_age: int | None, checks: bool
) -> None:
    config = from_url(f"{URL}?{query}")
    assert (config["CONN_MAX_AGE"], config["CONN_HEALTH_CHECKS"]) == (max_age, checks)
    # Django's options, not the driver's: psycopg would refuse them.
    assert not {"conn_max_age", "conn_health_checks"} & set(config.get("OPTIONS", {}))


@pytest.mark.parametrize(
    ("query", "pool"),
    [
        ("pool=true", True),
        ("pool=false", None),
        ("pool_max_size=2", {"max_size": 2, "min_size": 2}),
        ("pool=1&pool_min_size=1&pool_max_size=8&pool_timeout=2.5", {
            "min_size": 1, "max_size": 8, "timeout": 2.5}),
    ],
)  # fmt: skip
def test_django_connection_pool(query: str, pool: object) -> None:
    config = from_url(f"{URL}?{query}&conn_health_checks=true")
    assert config.get("OPTIONS", {}).get("pool") == pool
    assert config["CONN_HEALTH_CHECKS"]  # with the pool: it checks what it hands out


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        (URL + "?pool=true&conn_max_age=60", "exclude each other"),
        ("sqlite:////data/x.sqlite3?pool=true", "PostgreSQL's"),
        (URL + "?pool=false&pool_max_size=3", "without the pool"),
        (URL + "?pool_max_size=many", "not a number"),
        (URL + "?conn_max_age=-1", "seconds, or none"),
        (URL + "?conn_health_checks=maybe", "not a boolean"),
        ("mongodb://x/y", "mongodb"),
    ],
)
def test_a_bad_url_is_refused_at_start_up(url: str, complaint: str) -> None:
    with pytest.raises((ImproperlyConfigured, ValueError), match=complaint):
        from_url(url)


def test_a_sqlite_url_keeps_the_test_database_in_a_file() -> None:
    config = settings_for("sqlite:////data/other.sqlite3")
    assert (config["NAME"], config["TEST"]) == ("/data/other.sqlite3", {"NAME": SQLITE_TEST_PATH})


@pytest.mark.parametrize(
    "query",
    ["", "?conn_max_age=60&conn_health_checks=true", "?conn_max_age=none",
     "?pool=true&conn_health_checks=true", "?pool_min_size=1&pool_max_size=2&pool_timeout=2.5"],
)  # fmt: skip
def test_a_server_process_gets_the_same_database(query: str) -> None:
    """database_env (tools/servers.py) hands a server process what the tests' settings say."""
    config = settings_for(URL + query)
    config["NAME"] = "test_showcase"  # what pytest-django leaves there once it made it
    url = database_env(config)["DATABASE_URL"]
    again = from_url(url)
    for key in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "CONN_MAX_AGE",
                "CONN_HEALTH_CHECKS"):  # fmt: skip
        assert again[key] == config[key], key
    assert again.get("OPTIONS", {}).get("pool") == config["OPTIONS"].get("pool")


def test_a_server_process_gets_the_same_sqlite_file() -> None:
    assert database_env(settings_for("")) == {"DATABASE_PATH": str(SQLITE_PATH)}
