"""The database: declarative base, engine and session per app, and the one commit point.

Services only add and flush; `commit_scope()` is the single place that commits or rolls back, used by
the request cycle, the CLI and the task-queue runner alike.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import enum
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.engine import Engine

M = TypeVar("M")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out; stored naive in UTC so SQLite and PostgreSQL agree."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; times must carry a time zone")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


def stored_enum(cls: type[enum.Enum], name: str) -> sa.Enum:
    """An enum column stored as its values' text with a CHECK constraint: portable, and readable in the database."""
    return sa.Enum(cls, name=name, native_enum=False, create_constraint=True, length=20,
                   values_callable=lambda e: [m.value for m in e])


def get_or_raise(session: so.Session, model: type[M], object_id: Any, not_found: str, **options: Any) -> M:
    """The row of `model` with this id, or app.errors.NotFound with `not_found` (a whole translated sentence
    naming the kind of record, e.g. _("No job with id %(id)s.", id=job_id)): the one "get or 404" of services."""
    from app.errors import NotFound

    obj = session.get(model, object_id, **options)
    if obj is None:
        raise NotFound(not_found)
    return obj


# ---------------------------------------------------------------- a database that does not answer

# SQLite files every error as OperationalError, a misspelt table as much as a missing disk: these say the file
# cannot be used now (gone, unreadable, or held by a writer past the busy timeout), not that a statement is wrong.
_SQLITE_OUTAGES = ("unable to open database file", "disk i/o error", "database is locked", "readonly database")


def database_unreachable(exc: BaseException) -> bool:
    """An error saying the database does not answer (refused, gone, disconnected), not that a statement is wrong."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError):
        return True
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    if isinstance(exc.orig, sqlite3.Error):
        return any(text in str(exc.orig).lower() for text in _SQLITE_OUTAGES)
    return True  # a server's OperationalError: connection refused or lost, server shutting down, and the like


def describe_outage(exc: BaseException, url: sa.URL | None) -> str:
    """One line for the log: which database (its URL without the password) and what the driver said."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    text = f"{url.render_as_string(hide_password=True) if url is not None else 'database'}: " \
           f"{reason[0] if reason else type(exc).__name__}"
    if url is not None and url.password:
        text = text.replace(str(url.password), "***")  # a driver may quote the DSN it was given
    return text


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(so.DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


# On SQLite, a transaction that will write takes the lock when it begins (BEGIN IMMEDIATE) so that two
# writers queue on the busy timeout instead of one failing with "database is locked" half way through.
# Read-only requests begin deferred and never wait for a writer (WAL lets them read alongside).
_sqlite_write_intent: contextvars.ContextVar[bool] = contextvars.ContextVar("sqlite_write_intent", default=True)


@contextmanager
def read_only_intent() -> Iterator[None]:
    token = _sqlite_write_intent.set(False)
    try:
        yield
    finally:
        _sqlite_write_intent.reset(token)


def set_write_intent(write: bool) -> contextvars.Token[bool]:
    return _sqlite_write_intent.set(write)


def reset_write_intent(token: contextvars.Token[bool]) -> None:
    _sqlite_write_intent.reset(token)


def _create_private_sqlite_file(url: str) -> None:
    """Create the database file owner-only (0600) before SQLite does (it would use 0644 under the usual umask);
    its -wal and -shm files take the database file's mode. Existing ones (from an earlier version) lose group and
    other bits."""
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        os.close(os.open(database, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError:
        return  # a missing folder or a read-only file: SQLite reports it when it connects, in its own words
    for path in (database, f"{database}-wal", f"{database}-shm"):
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if mode & 0o077:
                os.chmod(path, mode & 0o700)
        except OSError:
            continue  # not there (no WAL yet), or not ours to change


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        _create_private_sqlite_file(url)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, emit BEGIN, so that we can choose IMMEDIATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if _sqlite_write_intent.get() else "BEGIN")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


class Database:
    """Engine and scoped session of one app. `db.session` is the session of the current context."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.sessionmaker = so.sessionmaker(expire_on_commit=False)
        self.session = so.scoped_session(self.sessionmaker, scopefunc=_scope_id)

    def init_app(self, app: Any) -> None:
        self.engine = make_engine(app.config["DATABASE_URL"])
        self.sessionmaker.configure(bind=self.engine)
        app.extensions["vcops_engine"] = self.engine

        @app.teardown_appcontext
        def _remove_session(_exc: BaseException | None) -> None:
            self.session.remove()

    def bind_to(self, bind: sa.Connection | Engine, **kwargs: Any) -> None:
        """Tests: run every session inside an outer transaction that they roll back afterwards."""
        self.session.remove()
        self.sessionmaker.configure(bind=bind, **kwargs)


def _scope_id() -> int:
    # One session per Flask app context (request, CLI command or task), else per thread.
    from flask import has_app_context
    from flask.globals import app_ctx

    if has_app_context():
        return id(app_ctx._get_current_object())  # type: ignore[attr-defined]  # werkzeug's LocalProxy
    return threading.get_ident()


db = Database()


@contextmanager
def commit_scope(on_commit: Callable[[], None] | None = None) -> Iterator[so.Session]:
    """The one commit point: commit when the block succeeds, roll back when it raises."""
    session = db.session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    if on_commit is not None:
        on_commit()
