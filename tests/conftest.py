"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, and an isolated environment.

PostgreSQL is 127.0.0.1:5432, database `test` (trust auth). Locally an unreachable server
skips the PostgreSQL half; under CI=true it fails the run instead.
"""

import os

import pytest

from models.db import make_engine, scratch_schema, unreachable, upgrade
from tests.browser import browser, server  # noqa: F401 - one chromium and one server per test session

PG_ADMIN_URL = os.environ.get("ROUNDTABLE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PYTHONIOENCODING", "utf-8")


@pytest.fixture(scope="session")
def pg_url():
    """The test PostgreSQL (each test gets a schema of its own from the `engine` fixture)."""
    problem = unreachable(PG_ADMIN_URL)
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is unreachable under CI: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    yield PG_ADMIN_URL


PREFECT_STARTUP_TIMEOUT = 180  # seconds: ~7 s idle, several times that on a busy two-core machine


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """Prefect's test harness (a temporary API server), started once per test session."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=PREFECT_STARTUP_TIMEOUT), \
            temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """A migrated, empty database: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
        upgrade(eng)
        yield eng
        eng.dispose()
        return
    with scratch_schema(request.getfixturevalue("pg_url"), prefix="t") as url:
        eng = make_engine(url)
        upgrade(eng)
        yield eng
        eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test reads the developer's settings, secret key or working directory."""
    for name in list(os.environ):
        if name.startswith("ROUNDTABLE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ROUNDTABLE_SECRET_FILE", str(tmp_path / "secret_key"))
    monkeypatch.setenv("ROUNDTABLE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.chdir(tmp_path)
    from models.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
