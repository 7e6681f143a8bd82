"""Dynamic micro-batching and group commit (issue #12): the batcher alone and behind the REST API.

A batch is made deterministic with a gate: the first request's ``predict`` call blocks until the
test releases it, so every request sent meanwhile queues and forms the next batch, in the order sent.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest
from sqlalchemy.exc import OperationalError

from fraud_app import storage
from fraud_app.data import MODEL_FEATURES
from fraud_app.inference import batching, service
from fraud_app.inference.batching import MicroBatcher, get_batcher, reset_batcher

pytestmark = pytest.mark.usefixtures("database")


@pytest.fixture(autouse=True)
def _fresh_batcher():
    reset_batcher()
    yield
    reset_batcher()


class Gate:
    """Blocks the first ``predict`` call until :meth:`release`; records the thread of every call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = threading.Event()
        self.entered = threading.Event()
        self.calls: list[tuple[str, int]] = []
        service.get_model()  # load (and warm up) the active model before the gate counts calls
        real = service._predict

        def gated(model, values):
            self.calls.append((threading.current_thread().name, len(values)))
            if len(self.calls) == 1:
                self.entered.set()
                assert self.opened.wait(30), "the test never released the gate"
            return real(model, values)

        monkeypatch.setattr(service, "_predict", gated)

    def release(self) -> None:
        self.opened.set()


def _wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def _values(rows: list[dict]) -> np.ndarray:
    return np.array([[row[name] for name in MODEL_FEATURES] for row in rows], dtype=np.float64)


def _distinct(sample_rows: list[dict], n: int) -> list[dict]:
    """``n`` valid transactions told apart by their amount."""
    return [{**sample_rows[i % len(sample_rows)], "amount": 1000.0 + i} for i in range(n)]


# -- the batcher alone ----------------------------------------------------------------------------

def test_queued_requests_form_one_batch_in_order_with_one_predict_and_one_commit(saved_model, sample_rows,
                                                                                   monkeypatch):
    gate = Gate(monkeypatch)
    commits = []
    real_insert = storage.insert_scored
    monkeypatch.setattr(storage, "insert_scored",
                        lambda parts, deadline=None: commits.append(sum(map(len, parts))) or real_insert(parts, deadline))
    batcher = MicroBatcher(max_batch=16)
    rows = _distinct(sample_rows, 6)
    leader = threading.Thread(target=batcher.submit, args=(_values(rows[:1]),))
    leader.start()
    assert gate.entered.wait(20)
    # the leader is scoring: these return at once, queued, in this order
    followers = [batcher.submit(_values([row])) for row in rows[1:]]
    assert all(not f.done() for f in followers)
    assert batcher.stats.queued == 5
    gate.release()
    leader.join(20)
    stored = [f.result(20)[0] for f in followers]
    ids = [row["id"] for row in stored]
    assert ids == sorted(ids) and len(set(ids)) == 5, "ids follow the order the requests arrived in"
    assert [row["features"]["amount"] for row in stored] == [row["amount"] for row in rows[1:]]
    assert list(batcher.stats.sizes) == [1, 5]
    assert [n for _, n in gate.calls] == [1, 5], "one predict call for the whole batch"
    assert commits == [1, 5], "one insert (one transaction) per batch"


def test_a_request_naming_an_unknown_model_fails_alone(saved_model, sample_rows, monkeypatch):
    from fraud_app.models import ModelNotFoundError

    gate = Gate(monkeypatch)
    batcher = MicroBatcher(max_batch=16)
    leader = threading.Thread(target=batcher.submit, args=(_values(sample_rows[:1]),))
    leader.start()
    assert gate.entered.wait(20)
    good = batcher.submit(_values(sample_rows[1:3]), model=saved_model)
    bad = batcher.submit(_values(sample_rows[3:4]), model="no_such_model")
    also_good = batcher.submit(_values(sample_rows[4:5]))
    gate.release()
    leader.join(20)
    assert len(good.result(20)) == 2 and len(also_good.result(20)) == 1
    with pytest.raises(ModelNotFoundError):
        bad.result(20)
    assert storage.count_predictions() == 4


def test_max_batch_1_turns_batching_off(saved_model, sample_rows):
    batcher = MicroBatcher(max_batch=1)
    rows = _distinct(sample_rows, 24)
    with ThreadPoolExecutor(8) as pool:
        futures = list(pool.map(lambda row: batcher.submit(_values([row])), rows))
    stored = [f.result(20)[0] for f in futures]
    assert batcher.stats.queued == 0 and set(batcher.stats.sizes) == {1} and batcher.stats.batches == 24
    assert [row["features"]["amount"] for row in stored] == [row["amount"] for row in rows]
    assert len({row["id"] for row in stored}) == 24 == storage.count_predictions()


def test_a_lone_caller_is_scored_at_once_in_its_own_thread(saved_model, sample_rows, monkeypatch):
    gate = Gate(monkeypatch)
    gate.release()
    batcher = MicroBatcher(max_batch=64, wait_ms=0)
    for row in sample_rows[:10]:
        future = batcher.submit(_values([row]))
        assert future.done(), "a request that finds the scorer idle is answered before submit returns"
        assert future.result()[0]["id"] > 0
    assert batcher.stats.queued == 0 and batcher.stats.window_waits == 0
    assert list(batcher.stats.sizes) == [1] * 10
    assert {name for name, _ in gate.calls} == {threading.current_thread().name}


def test_requests_queued_from_the_event_loop_start_one_leader_and_wake_no_thread(saved_model, sample_rows,
                                                                                  monkeypatch):
    """``enqueue`` (what the API's event loop calls) never scores in the calling thread: an idle scorer gets
    ONE leader in the executor; requests arriving while it works are only appended, and form the next batch."""
    gate = Gate(monkeypatch)
    started: list[str] = []
    pool = ThreadPoolExecutor(2, thread_name_prefix="spy")

    class SpyExecutor:
        def submit(self, fn, *args):
            started.append(fn.__name__)
            return pool.submit(fn, *args)

    batcher = MicroBatcher(max_batch=16)
    rows = _distinct(sample_rows, 6)
    futures = [Future() for _ in rows]
    batcher.enqueue(_values(rows[:1]), None, "api", None, futures[0], SpyExecutor())
    assert gate.entered.wait(20)
    for row, future in zip(rows[1:], futures[1:], strict=True):
        batcher.enqueue(_values([row]), None, "api", None, future, SpyExecutor())
    assert started == ["_lead"], "one leader for all six requests"
    gate.release()
    stored = [future.result(20)[0] for future in futures]
    assert [row["features"]["amount"] for row in stored] == [row["amount"] for row in rows]
    assert list(batcher.stats.sizes) == [1, 5]
    assert {name for name, _ in gate.calls} <= {"spy_0", "spy_1"}, "scored in the executor, not the caller"
    pool.shutdown()


def test_a_wait_window_is_a_setting(monkeypatch):
    monkeypatch.setenv("FRAUD_APP_BATCH_WAIT_MS", "2.5")
    monkeypatch.setenv("FRAUD_APP_BATCH_MAX", "1")
    assert MicroBatcher().wait_s == pytest.approx(0.0025) and MicroBatcher().max_batch == 1
    monkeypatch.delenv("FRAUD_APP_BATCH_WAIT_MS")
    monkeypatch.delenv("FRAUD_APP_BATCH_MAX")
    assert MicroBatcher().wait_s == 0 and MicroBatcher().max_batch == 64


# -- behind the REST API ---------------------------------------------------------------------------

def _post_all(api, bodies: list, queued: int) -> list:
    """POST ``bodies`` at once while the gate holds the leader; return once ``queued`` of them queued."""
    pool = ThreadPoolExecutor(len(bodies))
    futures = [pool.submit(api.post, "/api/predictions", body) for body in bodies]
    _wait_until(lambda: get_batcher().stats.queued >= queued)
    return futures


def test_a_micro_batch_with_one_invalid_request(api, saved_model, sample_rows, monkeypatch):
    gate = Gate(monkeypatch)
    leader = ThreadPoolExecutor(1).submit(api.post, "/api/predictions", sample_rows[0])
    assert gate.entered.wait(20)
    rows = _distinct(sample_rows, 4)
    invalid = {**sample_rows[1], "feature3": "abc"}
    futures = _post_all(api, [rows[0], rows[1], invalid, rows[2], rows[3]], 4)
    gate.release()
    assert leader.result(20).status == 201
    responses = [f.result(20) for f in futures]
    assert [r.status for r in responses] == [201, 201, 400, 201, 201]
    assert responses[2].json["error"]["field"] == "feature3"
    assert list(get_batcher().stats.sizes) == [1, 4], "the invalid request never joined the batch"
    for resp, row in zip([responses[i] for i in (0, 1, 3, 4)], rows, strict=True):
        assert storage.get_prediction(resp.json["id"])["features"]["amount"] == row["amount"]
    assert storage.count_predictions() == 5


def test_a_database_failure_mid_group_commit_fails_exactly_that_batch(api, saved_model, sample_rows, monkeypatch):
    from fraud_app.storage import writer

    gate = Gate(monkeypatch)
    seen = {"inserts": 0, "fired": 0}
    execute = writer.execute_driver

    def fail_after_insert(conn, sql, params=None, many=False):
        # the leader's batch commits; the next batch's rows reach the database, then its
        # transaction fails before the commit (as a lost connection or a full disk would)
        cursor = execute(conn, sql, params, many)
        if sql.lstrip().upper().startswith("INSERT INTO PREDICTIONS"):
            seen["inserts"] += 1
            if seen["inserts"] == 2:
                seen["fired"] += 1
                raise OperationalError(sql, params, Exception("simulated: disk I/O error"))
        return cursor

    monkeypatch.setattr(writer, "execute_driver", fail_after_insert)
    leader = ThreadPoolExecutor(1).submit(api.post, "/api/predictions", sample_rows[0])
    assert gate.entered.wait(20)
    rows = _distinct(sample_rows, 5)
    futures = _post_all(api, rows, 5)
    gate.release()
    assert leader.result(20).status == 201
    responses = [f.result(20) for f in futures]
    assert seen["fired"] == 1
    assert [r.status for r in responses] == [503] * 5, [r.body for r in responses]
    for resp in responses:
        assert int(resp.headers["retry-after"]) > 0
        assert "nothing of the batch was written" in resp.json["error"]["message"]
    assert list(get_batcher().stats.sizes) == [1, 5]
    assert storage.count_predictions() == 1, "no row of the failed batch is stored"
    after = api.post("/api/predictions", rows[0])
    assert after.status == 201, "the next batch succeeds"
    assert storage.count_predictions() == 2


def test_ids_and_rows_match_their_requests_under_concurrency(api, saved_model, sample_rows):
    rows = _distinct(sample_rows, 160)

    def client(k: int) -> list[tuple[int, float]]:
        out = []
        for row in rows[k * 10:(k + 1) * 10]:
            resp = api.post("/api/predictions", row)
            assert resp.status == 201, resp.body
            out.append((resp.json["id"], row["amount"]))
        return out

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(client, range(16)))
    for sent in results:
        ids = [i for i, _ in sent]
        assert ids == sorted(ids), "one client's requests are stored in the order it sent them"
    pairs = [pair for sent in results for pair in sent]
    assert len({i for i, _ in pairs}) == 160
    stored = {p["id"]: p["features"]["amount"] for p in storage.list_predictions(limit=1000)}
    assert stored == dict(pairs)
    stats = get_batcher().stats
    assert stats.requests == 160 and sum(stats.sizes) == 160


def test_batching_off_behind_the_api(api, saved_model, sample_rows, monkeypatch):
    monkeypatch.setenv("FRAUD_APP_BATCH_MAX", "1")
    rows = _distinct(sample_rows, 48)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda row: api.post("/api/predictions", row), rows))
    assert [r.status for r in responses] == [201] * 48
    stats = get_batcher().stats
    assert stats.queued == 0 and set(stats.sizes) == {1} and stats.batches == 48
    assert storage.count_predictions() == 48


def test_a_lone_sequential_client_is_scored_without_waiting(api, saved_model, sample_rows, monkeypatch):
    gate = Gate(monkeypatch)
    gate.release()
    for row in sample_rows[:15]:
        assert api.post("/api/predictions", row).status == 201
    stats = get_batcher().stats
    assert stats.queued == 0, "no request waited for another batch"
    assert stats.window_waits == 0, "no request waited for a window"
    assert list(stats.sizes) == [1] * 15
    # scored by the worker thread that parsed it, at once: no hand-over to another thread
    assert all(name.startswith("fraud-api") for name, _ in gate.calls)


def test_a_batch_holds_at_most_max_batch_requests(saved_model, sample_rows, monkeypatch):
    gate = Gate(monkeypatch)
    batcher = MicroBatcher(max_batch=4)
    leader = threading.Thread(target=batcher.submit, args=(_values(sample_rows[:1]),))
    leader.start()
    assert gate.entered.wait(20)
    queued = [batcher.submit(_values([row])) for row in sample_rows[1:10]]
    gate.release()
    leader.join(20)
    assert all(len(f.result(20)) == 1 for f in queued)
    assert list(batcher.stats.sizes) == [1, 4, 4, 1], "at most max_batch requests per batch"
    assert batching.get_batcher() is batching.get_batcher()


def test_a_large_batch_is_scored_on_the_helper_thread_while_its_inputs_are_encoded(saved_model, monkeypatch):
    from fraud_app.data import make_synthetic

    gate = Gate(monkeypatch)
    gate.release()
    values = make_synthetic(batching.OVERLAP_ROWS + 5, 0.1, 3)[MODEL_FEATURES].to_numpy(dtype=np.float64)
    stored = MicroBatcher(max_batch=8).submit(values).result(60)
    assert [name.startswith("fraud-score") for name, _ in gate.calls] == [True]
    expected = service._predict(service.get_model(), values)
    assert [row["fraud_probability"] for row in stored] == expected.tolist()
    assert stored[-1]["features"] == dict(zip(MODEL_FEATURES, values[-1].tolist(), strict=True))
    again = storage.get_prediction(stored[-1]["id"])
    assert again["features"] == stored[-1]["features"] and storage.count_predictions() == len(values)


def test_a_batch_is_answered_on_the_event_loop_in_one_hand_off():
    """The batch's answers reach the event loop in ONE ``call_soon_threadsafe`` (not one per request),
    each request with its own outcome, a failed one included."""
    import asyncio

    from fraud_app.api.handlers import LoopAnswer

    async def scenario() -> tuple[list, int]:
        loop = asyncio.get_running_loop()
        answers = [LoopAnswer(loop) for _ in range(3)]
        batcher = MicroBatcher(max_batch=8)
        jobs = [batching.ScoreJob(np.zeros((1, len(MODEL_FEATURES))), None, "api", answer) for answer in answers]
        hand_offs = []
        original = loop.call_soon_threadsafe

        def counting(callback, *args):
            if getattr(callback, "__name__", "").startswith("_settle"):  # not run_in_executor's own hand-off
                hand_offs.append(callback)
            return original(callback, *args)

        loop.call_soon_threadsafe = counting
        try:
            outcome = [(jobs[0], "a", True), (jobs[1], ValueError("bad row"), False), (jobs[2], "c", True)]
            await loop.run_in_executor(None, batcher._answer, outcome)
            results = await asyncio.gather(*(answer.future for answer in answers), return_exceptions=True)
        finally:
            del loop.call_soon_threadsafe
        return results, len(hand_offs)

    results, hand_offs = asyncio.run(scenario())
    assert hand_offs == 1
    assert results[0] == "a" and results[2] == "c"
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad row"
