"""The migrations build the schema the models describe, on SQLite and on PostgreSQL, and can be undone."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app import load_models
from app.db import Base, make_engine
from app.migrate import alembic_config, upgrade

BACKENDS = ["sqlite", "postgresql"]


def _differences(url: str) -> list:
    """What autogenerate would write into a new migration: nothing, when models and migrations agree."""
    load_models()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_from_empty_gives_exactly_the_schema_of_the_models(databases, backend):
    url = databases.new(backend)
    upgrade(url)
    load_models()
    assert set(Base.metadata.tables) <= _tables(url)
    assert _differences(url) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_downgrade_to_base_removes_everything_and_upgrade_rebuilds_it(databases, backend):
    url = databases.new(backend)
    config = alembic_config(url)
    upgrade(url)
    command.downgrade(config, "base")
    assert _tables(url) <= {"alembic_version"}
    upgrade(url)
    assert _differences(url) == []
