"""Engine, sessions and schema upgrade (Alembic)."""

import re
import threading
import uuid
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, insert, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, SQLModel

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def normalise_url(url: str) -> str:
    """Let people write postgresql://; we talk to it with psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


class BackgroundCheckpoints:
    """SQLite in a server: the WAL is copied back into the database file (a checkpoint, ~5 ms) by a thread of its
    own every `seconds`, not by whichever request's commit filled the WAL (SQLite's automatic checkpoint made one
    POST in a hundred wait that long). While it runs, the engine's connections leave checkpoints to it; stopped,
    they checkpoint as before. tests/test_checkpoints.py."""

    def __init__(self, engine: Engine, seconds: float = 1.0):
        self.engine, self.seconds = engine, seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    @staticmethod
    def _leave_checkpoints_to_us(dbapi_connection, _record, _proxy) -> None:
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    def start(self) -> None:
        if self._thread is None:
            event.listen(self.engine, "checkout", self._leave_checkpoints_to_us)
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="sqlite-checkpoints", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()
            event.remove(self.engine, "checkout", self._leave_checkpoints_to_us)
            self.checkpoint()
            self.engine.dispose()  # connections open again with SQLite's automatic checkpoints

    def checkpoint(self) -> tuple[int, int, int]:
        """(busy, frames in the WAL, frames copied back): PASSIVE, so no reader or writer waits for it."""
        with self.engine.connect() as connection:
            return tuple(connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one())

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            self.checkpoint()


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


_REVISION = re.compile(r"^(down_)?revision\b[^=\n]*=\s*(?:['\"]([^'\"]+)['\"]|None)", re.MULTILINE)


def head_revision() -> str | None:
    """The newest migration's id, read from the version files (importing Alembic to learn it costs a
    command ~0.2 s of start-up); None when the files do not name exactly one head."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for down, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            if value:
                (parents if down else revisions).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def at_head(engine: Engine) -> bool:
    head = head_revision()
    if head is None:
        return False
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
    except Exception:  # noqa: BLE001 - no version table yet: a new database
        return False


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (an empty database included)."""
    if at_head(engine):
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def unreachable(url: str) -> str | None:
    """None when the database answers, else the first line of the reason."""
    try:
        engine = make_engine(url)
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - the reason is handed back to be shown
        return str(exc).splitlines()[0]


@contextmanager
def scratch_schema(url: str, prefix: str = "scratch") -> Iterator[str]:
    """A throw-away schema on a PostgreSQL server (tests, benchmarks): yields a URL whose search_path
    is that schema, and drops the schema afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def insert_row_plain(session: Session, row: SQLModel) -> SQLModel:
    """A new row written now, its id set: the unit of work's way (what `insert_row` must equal)."""
    session.add(row)
    session.flush()
    return row


def insert_row(session: Session, row: SQLModel) -> SQLModel:
    """`insert_row_plain` without the unit of work: one INSERT of the row's column values on the session's
    connection, then the row joins the session as if it had been loaded (a later change to it is flushed as
    usual). The flush cost ~0.25 ms a row, and every answer writes two (tests/test_insert_row.py)."""
    columns = _columns_of(type(row))
    values = {column: getattr(row, key) for key, column in columns if not (column == "id" and row.id is None)}
    row.id = session.connection().execute(_insert_into(row.__table__), values).inserted_primary_key[0]
    make_transient_to_detached(row)
    session.add(row)
    return row


@lru_cache(maxsize=64)
def _insert_into(table):
    return insert(table)


@lru_cache(maxsize=64)
def _columns_of(model: type) -> tuple[tuple[str, str], ...]:
    """(attribute, column name) of each mapped column."""
    return tuple((attribute.key, attribute.columns[0].name) for attribute in inspect(model).column_attrs)
