"""The annotation database: tables and the engine (SQLite by default, any SQLAlchemy URL for a team).

    projects   one per annotation job: mode, guidelines (versioned), overlap, agreement threshold
    items      what is judged: a prompt and its responses (JSON), in file order
    users      the admin and each project's annotators; only a SHA-256 of their login token is kept
    labels     one row per (item, annotator): the canonical answer or a skip reason, the order the
               answers were shown in, and the guidelines version it was given under
    leases     one reservation per annotator: the item they were given and until when it is theirs,
               written in the transaction that picks it, so no item is handed to more annotators
               than its overlap still needs (`leases.py`)
    sessions   a browser's login: SHA-256 of a random session id, its user and expiry (`sessions.py`)
    settings   the server secret (CSRF tokens, display orders) so they survive a restart

SQLite runs in WAL mode with synchronous=FULL: a label is on disk when its transaction commits, so
an acknowledged submission survives kill -9 and power loss alike. A transaction that decides who
gets an item (`write_locked`) takes the write lock when it begins (SQLite: BEGIN IMMEDIATE; any
other database: the project's row, SELECT ... FOR UPDATE), so concurrent picks see each other.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

metadata = MetaData()

projects = Table(
    "projects", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("mode", String(16), nullable=False),  # pairwise | ranking | scale
    Column("guidelines", Text, nullable=False),
    Column("guidelines_version", Integer, nullable=False, default=1),
    Column("overlap", Integer, nullable=False),  # annotators wanted per item
    Column("min_agreement", Float, nullable=False),
    Column("source", String(300), nullable=False),  # the file the items came from
    Column("source_report", Text, nullable=False),  # what reading it kept and skipped (file:line)
    Column("created_at", Float, nullable=False),
)

items = Table(
    "items", metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False, index=True),
    Column("ext_id", String(100), nullable=False),  # the id in exports: record number (+ /i-j for a pair of it)
    Column("prompt", Text, nullable=False),  # JSON: a string or chat messages
    Column("responses", Text, nullable=False),  # JSON list of strings
    Column("where", String(300), nullable=False),  # file:line it came from
    UniqueConstraint("project_id", "ext_id"),
)

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=True),  # None: the admin
    Column("name", String(64), nullable=False),
    Column("role", String(16), nullable=False),  # admin | annotator
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("project_id", "name"),
)

labels = Table(
    "labels", metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False, index=True),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("annotator_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("value", Text, nullable=True),  # JSON canonical answer; None when skipped
    Column("skip_reason", String(500), nullable=True),
    Column("shown", Text, nullable=False),  # JSON: response indices in display order
    Column("guidelines_version", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("item_id", "annotator_id"),  # an answer is stored once; a resubmission edits it
)

leases = Table(
    "leases", metadata,
    Column("annotator_id", Integer, ForeignKey("users.id"), primary_key=True),  # one reservation each
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False, index=True),
    Column("expires_at", Float, nullable=False),
)

sessions = Table(
    "sessions", metadata,
    Column("id_hash", String(64), primary_key=True),  # SHA-256 of the cookie's random session id
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

settings = Table(
    "settings", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
)


def database_url(db: str) -> str:
    """A SQLAlchemy URL as given, or a file path as SQLite."""
    return db if "://" in db else f"sqlite:///{db}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # transactions begin in `_sqlite_begin`, not at pysqlite's whim
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA synchronous=FULL")  # committed = on disk
    cur.execute("PRAGMA busy_timeout=30000")  # writers queue instead of failing with 'database is locked'
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn) -> None:
    """BEGIN IMMEDIATE for `write_locked` transactions: the write lock is taken before the first read,
    so two picks cannot both read the same free slot (a deferred BEGIN would let them)."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write_lock") else "BEGIN")


@contextlib.contextmanager
def write_locked(engine: Engine, project_id: int, durable: bool = True) -> Iterator[Connection]:
    """A transaction that holds the write lock of `project_id`'s assignments from its start to its commit.
    `durable=False` (a lease, which a power cut may lose harmlessly): SQLite commits it without an
    fsync (synchronous=NORMAL; the next durable commit syncs it along)."""
    with engine.connect().execution_options(write_lock=True) as conn:
        fast = engine.dialect.name == "sqlite" and not durable
        if fast:
            conn.connection.dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        try:
            with conn.begin():
                if engine.dialect.name != "sqlite":
                    conn.execute(select(projects.c.id).where(projects.c.id == project_id).with_for_update())
                yield conn
        finally:
            if fast:
                conn.connection.dbapi_connection.execute("PRAGMA synchronous=FULL")


def open_db(db: str) -> Engine:
    """The engine of `db` (a path or URL), tables created if missing, and a server secret. A database
    that cannot be opened (bad URL, missing driver, unreachable server) is a one-line ValueError."""
    url = database_url(db)
    try:
        if "://" not in db:
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, pool_size=20, max_overflow=20, pool_timeout=60)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        metadata.create_all(engine)
        with engine.begin() as conn:
            if conn.execute(select(settings.c.value).where(settings.c.key == "secret")).first() is None:
                conn.execute(settings.insert().values(key="secret", value=secrets.token_hex(32)))
    except (SQLAlchemyError, ImportError, OSError) as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{db}: cannot open the annotation database ({reason})") from None
    return engine


def server_secret(engine: Engine) -> bytes:
    with engine.connect() as conn:
        return bytes.fromhex(conn.execute(select(settings.c.value).where(settings.c.key == "secret")).scalar_one())
