"""
Both databases in one test run: the tests whose outcome depends on the database (the ORM
lesson, `database_error`, stale connections) run on the run's default database and on
PostgreSQL, even when the run's default is SQLite (`make unit` on Python 3.11).

The session's own PostgreSQL (root conftest's `postgres_server`, started only when a collected
test asks for it) becomes the database alias `postgresql`; a test that takes the `database`
fixture runs once per database, with every model routed to that alias, so the consumers, the
session store and the test itself all talk to it, unchanged. Where the default is already
PostgreSQL (the Python 3.12+ run on `make compat`'s throwaway server), it runs once.
"""

from typing import Any

import pytest
from django.conf import settings
from django.db import connections

# The alias of the session's own PostgreSQL.
POSTGRES_ALIAS = "postgresql"
# Django's name for the vendor, per engine: the ids of the tests that run on each.
VENDORS = {"django.db.backends.sqlite3": "sqlite", "django.db.backends.postgresql": "postgresql"}


def default_vendor() -> str:
    """`sqlite` or `postgresql`: what the run's default database is."""
    return VENDORS[settings.DATABASES["default"]["ENGINE"]]


def postgres_alias() -> str:
    """The alias of a PostgreSQL database in this run: the default when it is one."""
    return "default" if default_vendor() == "postgresql" else POSTGRES_ALIAS


def on(alias: str, **marker: Any) -> pytest.MarkDecorator:
    """The `django_db` marker of a test that uses `alias` (the default stays allowed too)."""
    return pytest.mark.django_db(databases=sorted({"default", alias}), **marker)


def database_params() -> list[Any]:
    """One parameter per database of the run: the default, and PostgreSQL unless it is that."""
    params = [pytest.param("default", id=default_vendor(), marks=on("default", transaction=True))]
    if postgres_alias() != "default":
        params.append(
            pytest.param(
                POSTGRES_ALIAS, id="postgresql", marks=on(POSTGRES_ALIAS, transaction=True)
            )
        )
    return params


def wants_postgres_alias(items: list[pytest.Item]) -> bool:
    """Whether a collected test asks for the session's PostgreSQL alias."""
    return any(
        POSTGRES_ALIAS in (marker.kwargs.get("databases") or ())
        for item in items
        for marker in item.iter_markers("django_db")
    )


def add_postgres_alias(url: str) -> None:
    """Make the session's PostgreSQL (`url`) the alias POSTGRES_ALIAS, before pytest-django
    creates its test database."""
    from config.database import database_settings

    # Its test database gets Django's usual name; it is alone on its server.
    settings.DATABASES[POSTGRES_ALIAS] = database_settings(url, "", "")
    # Django fills in each alias's defaults once; do it again for the new one.
    connections.configure_settings(settings.DATABASES)


class SelectedDatabase:
    """A database router: every model to the alias the running test selected (`database`)."""

    alias = "default"

    def db_for_read(self, model: type, **hints: Any) -> str:
        """Reads go to the selected alias."""
        return self.alias

    def db_for_write(self, model: type, **hints: Any) -> str:
        """So do writes."""
        return self.alias

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        """Objects of one test live in one database."""
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        """Every alias gets the whole schema."""
        return True
