"""Shared fixtures: every test runs against temp folders and the seeded synthetic data set."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Environment every test (and every server a test starts) sees by default.
TEST_ENV = {
    "FRAUD_APP_DATASET": "synthetic",
    "FRAUD_APP_SYNTHETIC_ROWS": "20000",
    "FRAUD_APP_SYNTHETIC_FRAUD_RATE": "0.01",
    "FRAUD_APP_SEED": "0",
    "FRAUD_APP_LOG_LEVEL": "WARNING",
}


@pytest.fixture(autouse=True)
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every setting at a fresh temp folder and use the synthetic data set."""
    home = tmp_path / "home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith("FRAUD_APP_") and not name.startswith("FRAUD_APP_TEST_") and not name.startswith("FRAUD_APP_REQUIRE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FRAUD_APP_HOME", str(home))
    monkeypatch.setenv("FRAUD_APP_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("FRAUD_APP_OUTPUT_DIR", str(home / "output"))
    monkeypatch.setenv("FRAUD_APP_LOG_DIR", str(home / "logs"))
    for key, value in TEST_ENV.items():
        monkeypatch.setenv(key, value)
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers (any status), or fail naming the server's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@dataclass
class ServedApp:
    """A real ``panel serve app.py --plugins fraud_app.api`` process."""

    port: int
    proc: subprocess.Popen
    env: dict[str, str]
    log_path: Path
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_app(env_overrides: dict[str, str] | None = None, extra_args: list[str] | None = None,
              log_path: Path | None = None) -> ServedApp:
    """Start the real server on a free port with the current FRAUD_APP_* environment."""
    port = free_port()
    env = os.environ.copy()
    env.update(env_overrides or {})
    log_path = log_path or Path(env["FRAUD_APP_HOME"]) / f"server-{port}.log"
    cmd = [sys.executable, "-m", "panel", "serve", str(ROOT / "app.py"), "--plugins", "fraud_app.api",
           "--port", str(port), "--address", "127.0.0.1",
           f"--allow-websocket-origin=127.0.0.1:{port}", *(extra_args or [])]
    log_file = open(log_path, "wb")
    # Its own process group, so that stop_app also ends the children of --num-procs.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log_file.close()
    app = ServedApp(port=port, proc=proc, env=env, log_path=log_path)
    try:
        wait_for_http(f"{app.url}/api/health", timeout=90, proc=proc)
    except Exception as exc:
        stop_app(app)
        raise RuntimeError(f"{exc}\n--- server log ---\n{app.log()[-4000:]}") from None
    return app


def stop_app(app: ServedApp) -> None:
    """Stop the server and every process of its group (``--num-procs`` forks children)."""

    def signal_group(sig: int) -> None:
        try:
            os.killpg(app.proc.pid, sig)
        except ProcessLookupError:
            pass

    signal_group(signal.SIGTERM)
    try:
        app.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        signal_group(signal.SIGKILL)
        app.proc.wait(timeout=15)
    # Children that outlived the parent's exit are ended too.
    signal_group(signal.SIGKILL)


@pytest.fixture
def served_app(app_env: Path) -> Iterator[ServedApp]:
    """A fresh server for one test (synthetic data, temp output)."""
    app = start_app()
    try:
        yield app
    finally:
        stop_app(app)
