"""Helpers for the API benchmark: a real saved model, the real server, a bare Tornado server, a load client.

Everything runs on 127.0.0.1 only; every loop is bounded by a request count and a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_MODEL = "bench_lightgbm"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_env(output_dir: Path, models_dir: Path, data_dir: Path) -> dict[str, str]:
    """Environment for the benchmark's server: the real data set, a fresh output folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_APP_")}
    env.update({
        "FRAUD_APP_HOME": str(ROOT),
        "FRAUD_APP_DATASET": "real",
        "FRAUD_APP_DATA_DIR": str(data_dir),
        "FRAUD_APP_OUTPUT_DIR": str(output_dir),
        "FRAUD_APP_MODELS_DIR": str(models_dir),
        "FRAUD_APP_LOG_DIR": str(output_dir / "logs"),
        "FRAUD_APP_LOG_LEVEL": "WARNING",
    })
    return env


#: The benchmarks' model is ONE LightGBM booster, as issue #12 states its set-up ("one LightGBM model"): the
#: default LightGBM keeps its k fold models (``final_model="fold_bag"``), which scores k boosters per row.
BENCH_PARAMS = {"lightgbm": {"final_model": "refit"}}


def ensure_model(env: dict[str, str], kind: str = "lightgbm") -> dict:
    """Train and save ``BENCH_MODEL`` on the real data (once; reused while its files exist and it was trained
    with :data:`BENCH_PARAMS`).

    Runs the project's own training pipeline in a subprocess with ``env``; returns the metadata.
    """
    params = BENCH_PARAMS.get(kind, {})
    code = f"""
import json, sys
from fraud_app.models import model_exists, read_metadata
from fraud_app.training import TrainingPipeline
from fraud_app.data import load_transactions
name, params = {BENCH_MODEL!r}, {params!r}
fresh = model_exists(name) and read_metadata(name).get("kind") == {kind!r} and all(
    read_metadata(name).get("params", {{}}).get(k, "refit" if k == "final_model" else None) == v
    for k, v in params.items())
if not fresh:
    TrainingPipeline({kind!r}, params, name=name, save=True, seed=0).run(load_transactions())
meta = read_metadata(name)
json.dump({{k: meta.get(k) for k in ("name", "kind", "version", "threshold", "metrics", "data_fingerprint",
           "trained_at", "params")}}, sys.stdout)
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True,
                         text=True, timeout=1800)
    return json.loads(out.stdout)


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log_path: Path

    def stop(self) -> None:
        """SIGTERM the server (with ``--num-procs``, in a session of its own: every process of its group, or
        the forked workers outlive their parent), then SIGKILL whatever is left after 15 s."""
        group = self._group()
        if group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
        elif self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)
        if group is not None:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and _group_alive(group):
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)

    def _group(self) -> int | None:
        """The server's process group when it leads one (started with ``new_session``)."""
        try:
            return self.proc.pid if os.getpgid(self.proc.pid) == self.proc.pid else None
        except ProcessLookupError:
            return None

    def kill9(self) -> None:
        """SIGKILL the server; with ``--num-procs`` (its own session) every process of its group."""
        if os.getpgid(self.proc.pid) == self.proc.pid:
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(15)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _launch(cmd: list[str], port: int, log_path: Path, env: dict[str, str] | None = None,
            new_session: bool = False) -> Server:
    """Start ``cmd`` (output to ``log_path``) and wait until it answers ``/api/health`` on ``port``;
    a server that never answers is stopped before the error is raised."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=new_session)
    server = Server(proc, port, log_path)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health", proc)
    except Exception:
        server.stop()
        raise
    return server


def start_app_server(env: dict[str, str], log_path: Path, extra: list[str] | None = None,
                     new_session: bool = False) -> Server:
    """The real ``panel serve app.py --plugins fraud_app.api`` on a free loopback port (in a session of
    its own with ``new_session``, so that :meth:`Server.kill9` reaches its forked workers too)."""
    port = free_port()
    cmd = [sys.executable, "-m", "panel", "serve", str(ROOT / "app.py"), "--plugins", "fraud_app.api",
           "--port", str(port), "--address", "127.0.0.1", f"--allow-websocket-origin=127.0.0.1:{port}",
           *(extra or [])]
    return _launch(cmd, port, log_path, env, new_session)


def start_flask_reference(env: dict[str, str], log_path: Path, database_url: str, model: str) -> Server:
    """``bench/flask_reference.py`` (Flask + Flask-SQLAlchemy under waitress, 4 threads) on a free port."""
    port = free_port()
    return _launch([sys.executable, "-m", "bench.flask_reference", "--port", str(port), "--database", database_url,
                    "--model", model], port, log_path, env)


def start_bare_server(log_path: Path) -> Server:
    """A bare Tornado process answering constant JSON: the ceiling the API is compared with."""
    port = free_port()
    return _launch([sys.executable, "-m", "bench._bare_server", "--port", str(port)], port, log_path)


def start_floor_server(log_path: Path, model_dir: Path, database: str) -> Server:
    """``bench/_floor_server.py``: the least a server must do under the issue's rules (one hop to a thread,
    predict, one committed row, one hop back), with ``model_dir``'s LightGBM model; ``database`` is a SQLite
    file or a PostgreSQL URL."""
    port = free_port()
    return _launch([sys.executable, "-m", "bench._floor_server", "--port", str(port), "--model-dir", str(model_dir),
                    "--database", str(database)], port, log_path)


# -- a minimal keep-alive HTTP/1.1 client ----------------------------------------------------------

def _request_bytes(method: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in (headers or {}).items()), "", ""]
    return "\r\n".join(lines).encode("ascii") + body


def _parse_head(head: bytes) -> tuple[int, int]:
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, length


class SyncClient:
    """One blocking keep-alive connection (lowest client overhead for the sequential figures)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(self, raw: bytes) -> tuple[int, bytes]:
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        status, length = _parse_head(head)
        while len(rest) < length:
            chunk = self.sock.recv(max(65536, length - len(rest)))
            if not chunk:
                raise ConnectionError("server closed the connection")
            rest += chunk
        self.buffer = rest[length:]
        return status, rest[:length]

    def close(self) -> None:
        self.sock.close()


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: The first few answers with a 5xx status (status and body), to say why.
    server_errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def add_status(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


async def _client(port: int, raw: bytes, count: int, result: LoadResult, deadline: float,
                  collect_ids: bool) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        result.errors.append(f"connect: {exc}")
        return
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                result.errors.append("deadline")
                return
            started = time.perf_counter()
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status, length = _parse_head(head[:-4])
            body = await reader.readexactly(length)
            result.latencies.append(time.perf_counter() - started)
            result.add_status(status)
            if status >= 500 and len(result.server_errors) < 5:
                result.server_errors.append(f"{status} {body[:300].decode('utf-8', 'replace')}")
            if collect_ids and status == 201:
                result.ids.append(json.loads(body)["id"])
    except (OSError, asyncio.IncompleteReadError, ConnectionError) as exc:
        result.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        writer.close()


def run_clients(port: int, raw: bytes, clients: int, per_client: int, timeout: float = 300,
                collect_ids: bool = False) -> LoadResult:
    """``clients`` concurrent keep-alive connections, each sending ``raw`` ``per_client`` times."""
    result = LoadResult()

    async def main() -> None:
        deadline = time.monotonic() + timeout
        await asyncio.gather(*(_client(port, raw, per_client, result, deadline, collect_ids)
                               for _ in range(clients)))

    started = time.perf_counter()
    asyncio.run(main())
    result.elapsed = time.perf_counter() - started
    return result


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q / 100 * len(ordered) // 1))))
    return ordered[rank - 1]
