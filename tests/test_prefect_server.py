"""The installed Prefect really serves: `prefect server start` comes up healthy and reports 3.8.x.

`pip check` passing is not enough (DESIGN §4: fastapi 0.151+ or SQLAlchemy 2.1 install cleanly
and then break the server at start), so this starts the venv's own server on a free port.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

READY_WITHIN = 90  # seconds; a cold start (database migrations) takes ~10 s here


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def stop(process: subprocess.Popen) -> None:
    """End the server and the children it spawned (its own process group), gently first."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.mark.timeout(180)
def test_prefect_server_starts_and_reports_3_8(tmp_path):
    prefect = Path(sys.executable).with_name("prefect")
    assert prefect.exists(), f"no prefect executable beside {sys.executable}"
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
    )
    log = (tmp_path / "server.log").open("w+", encoding="utf-8")
    process = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + READY_WITHIN
        healthy = False
        while time.monotonic() < deadline and process.poll() is None:
            try:
                healthy = get_json(f"{base}/health") is True
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                healthy = False
            if healthy:
                break
            time.sleep(0.5)
        log.seek(0)
        output = log.read()
        assert process.poll() is None, f"prefect server exited with {process.returncode}:\n{output[-4000:]}"
        assert healthy, f"prefect server not healthy within {READY_WITHIN} s:\n{output[-4000:]}"
        version = get_json(f"{base}/admin/version")
        assert version.startswith("3.8."), version
        assert "Body() got an unexpected keyword argument" not in output
    finally:
        stop(process)
        log.close()
