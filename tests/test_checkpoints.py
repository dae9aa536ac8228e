"""SQLite under the web app: checkpoints run in a thread of their own, never in a request's commit."""

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from models.db import BackgroundCheckpoints, make_engine
from tests.web_helpers import make_world

PAGE = 4096


def _write(engine, rows: int) -> None:
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS t (x TEXT)"))
    for _ in range(rows):  # a commit each, as requests do
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (:x)"), {"x": "ສ" * 2000})


def _wal(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_while_running_commits_leave_the_wal_to_the_thread_and_it_copies_it_back(tmp_path):
    path = tmp_path / "c.db"
    engine = make_engine(f"sqlite:///{path}")
    checkpoints = BackgroundCheckpoints(engine, seconds=3600)  # the test calls checkpoint() itself
    checkpoints.start()
    try:
        _write(engine, 1500)  # ~1,500 pages: SQLite alone would have checkpointed at 1,000 and reused the WAL
        assert _wal(path) > 1200 * PAGE
        busy, frames, copied = checkpoints.checkpoint()
        assert busy == 0 and frames == copied > 1200
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    finally:
        checkpoints.stop()
    with engine.connect() as connection:  # stopped: SQLite checkpoints by itself again
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1500


def test_the_web_app_runs_them_while_it_serves(sqlite_engine):
    app = make_world(sqlite_engine).app()
    with TestClient(app):
        assert app.state.checkpoints.running
        with sqlite_engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    assert not app.state.checkpoints.running
