"""`roundtable init`: the secret key is created once (0600, never printed) and the schema upgraded."""

import stat
import uuid

import pytest
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from models.db import engine_for, make_engine
from models.settings import get_settings
from roundtable.cli import app

runner = CliRunner()


@pytest.fixture
def secret_file(tmp_path, monkeypatch):
    path = tmp_path / "config" / "roundtable" / "secret_key"  # parents do not exist yet
    monkeypatch.setenv("ROUNDTABLE_SECRET_FILE", str(path))
    get_settings.cache_clear()
    return path


def test_init_creates_the_key_once(secret_file, tmp_path):
    first = runner.invoke(app, ["init"])
    assert first.exit_code == 0, first.output
    key = secret_file.read_text(encoding="utf-8").strip()
    assert len(key) >= 43  # token_urlsafe(32)
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret_file.parent.stat().st_mode) == 0o700
    assert f"created {secret_file}" in first.output
    assert key not in first.output
    assert "roundtable groups load examples/groups.yaml" in first.output

    second = runner.invoke(app, ["init"])
    assert second.exit_code == 0, second.output
    assert secret_file.read_text(encoding="utf-8").strip() == key
    assert f"kept the existing key in {secret_file}" in second.output
    assert key not in second.output
    get_settings.cache_clear()
    assert get_settings().resolved_secret_key() == key


def test_init_upgrades_the_database(secret_file, tmp_path):
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    database = create_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    assert {"member", "membership", "working_group", "notification"} <= set(inspect(database).get_table_names())
    database.dispose()
    engine_for.cache_clear()


def test_init_on_postgresql_hides_the_password(secret_file, pg_url, monkeypatch):
    schema = f"t_init_{uuid.uuid4().hex[:8]}"
    admin = make_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    # trust auth ignores the password; it is there to prove it is not printed
    url = pg_url.replace("://postgres@", "://postgres:hunter2@") + f"?options=-csearch_path%3D{schema}"
    monkeypatch.setenv("ROUNDTABLE_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["init"])
        assert result.exit_code == 0, result.output
        assert "hunter2" not in result.output and "***" in result.output
        with admin.connect() as conn:
            tables = conn.execute(
                text("select table_name from information_schema.tables where table_schema = :s"), {"s": schema}
            ).scalars().all()
        assert "membership" in tables
    finally:
        engine_for(url).dispose()
        engine_for.cache_clear()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_key_from_environment_writes_no_file(secret_file, monkeypatch):
    monkeypatch.setenv("ROUNDTABLE_SECRET_KEY", "from-the-environment")
    get_settings.cache_clear()
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert "ROUNDTABLE_SECRET_KEY" in result.output and "from-the-environment" not in result.output
    assert not secret_file.exists()


def test_empty_key_file_is_replaced(secret_file):
    secret_file.parent.mkdir(parents=True)
    secret_file.write_text("\n", encoding="utf-8")
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert len(secret_file.read_text(encoding="utf-8").strip()) >= 43
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_secret_file_that_is_a_directory_fails_clearly(secret_file):
    secret_file.mkdir(parents=True)
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 2
    assert f"secret file {secret_file} is a directory" in result.output
