"""The least a scoring server must do under the project's rules: bench_api's measured floor.

    .venv/bin/python -m bench._floor_server --port 8888 --model-dir output/bench/models/bench_lightgbm \
        --database /tmp/floor.sqlite3        # or --database postgresql://user@host:port/db?options=...

One Tornado handler, ``POST /api/predictions``, that does only what the issue's rules leave no way around,
in the leanest form this stack offers, and nothing else (no validation, no auth, no monitoring counts, no
micro-batching):

* the work runs off the event loop: one hop to a single worker thread and one back
  (``call_soon_threadsafe``);
* in that thread: ``orjson.loads`` of the body, a float64 row in the model's feature order, LightGBM's
  ``Booster.predict`` with one thread, one ``INSERT`` and its ``COMMIT`` straight through the driver
  (the stdlib ``sqlite3`` with WAL and ``synchronous=NORMAL``, or ``psycopg`` for a PostgreSQL URL, into
  a table of its own): the answer leaves only once the row is durable;
* the answer is ``orjson.dumps`` of the stored row's id and score.

Its speed is what any implementation of the issue's path can reach on this machine and stack; the app's
figures are read against it as well as against the bare server (``bench/_bare_server.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import sqlite3
import threading
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import orjson
from tornado.web import Application, RequestHandler


class Scorer(threading.Thread):
    """One worker thread: score a body and commit its row, then hand the answer back to the loop."""

    def __init__(self, model_dir: Path, database: str) -> None:
        super().__init__(daemon=True, name="floor-scorer")
        meta = json.loads((model_dir / "metadata.json").read_text())
        self.features = list(meta["features"])
        self.threshold = float(meta["threshold"])
        self.booster = lgb.Booster(model_file=str(model_dir / "model.lgb.txt"))
        self.database = database
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()

    def _connect(self) -> tuple:
        """The driver connection and its INSERT (returning the new id)."""
        if self.database.startswith("postgresql"):
            import psycopg

            db = psycopg.connect(self.database.replace("postgresql+psycopg://", "postgresql://"))
            db.execute("CREATE TABLE IF NOT EXISTS floor_predictions (id BIGSERIAL PRIMARY KEY, created_at DOUBLE "
                       "PRECISION, inputs JSON, fraud_probability DOUBLE PRECISION, is_fraud BOOLEAN)")
            db.commit()
            return db, ("INSERT INTO floor_predictions (created_at, inputs, fraud_probability, is_fraud) "
                        "VALUES (%s, %s, %s, %s) RETURNING id")
        db = sqlite3.connect(self.database)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS floor_predictions (id INTEGER PRIMARY KEY, created_at REAL, "
                   "inputs TEXT, fraud_probability REAL, is_fraud INTEGER)")
        db.commit()
        return db, ("INSERT INTO floor_predictions (created_at, inputs, fraud_probability, is_fraud) "
                    "VALUES (?, ?, ?, ?) RETURNING id")

    def run(self) -> None:
        db, insert = self._connect()
        cursor = db.cursor()
        while True:
            body, loop, future = self.jobs.get()
            try:
                payload = orjson.loads(body)
                row = np.array([[payload[name] for name in self.features]], dtype=np.float64)
                score = float(self.booster.predict(row, num_threads=1)[0])
                flagged = score >= self.threshold
                new_id = cursor.execute(insert, (time.time(), body.decode(), score, flagged)).fetchone()[0]
                db.commit()
                answer = orjson.dumps({"id": new_id, "fraud_probability": score, "is_fraud": flagged})
                loop.call_soon_threadsafe(_settle, future, answer, None)
            except Exception as exc:  # noqa: BLE001 - answered as a 500 by the handler
                db.rollback()
                loop.call_soon_threadsafe(_settle, future, None, exc)


def _settle(future: asyncio.Future, value: bytes | None, exc: Exception | None) -> None:
    if not future.cancelled():
        future.set_exception(exc) if exc is not None else future.set_result(value)


class FloorHandler(RequestHandler):
    scorer: Scorer

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")

    def get(self) -> None:  # the launcher's readiness probe (/api/health)
        self.finish(b'{"status":"ok"}')

    async def post(self) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.scorer.jobs.put((self.request.body, loop, future))
        self.set_status(201)
        self.finish(await future)


async def main(port: int, model_dir: Path, database: str) -> None:
    scorer = Scorer(model_dir, database)
    scorer.start()
    FloorHandler.scorer = scorer
    Application([(r"/api/.*", FloorHandler)]).listen(port, "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--database", required=True, help="a SQLite file, or a PostgreSQL URL")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.model_dir, args.database))
