"""Transactions from Python: the context manager, conflicts, closed handles, threads."""

import threading
import time

import pytest

import sop
from sop import Item, TransactionMode
from sop.database import Database, DatabaseOptions


def test_context_manager_commits_and_rolls_back(db, ctx):
    with db.begin_transaction(ctx) as tx:
        db.new_btree(ctx, "t", tx).add(ctx, "a", 1)
    with pytest.raises(RuntimeError, match="boom"):
        with db.begin_transaction(ctx) as tx:
            t = db.open_btree(ctx, "t", tx)
            t.add(ctx, "b", 2)
            t.update(ctx, "a", 100)
            raise RuntimeError("boom")
    assert not tx.is_begun()
    with db.begin_transaction(ctx, mode=TransactionMode.ForReading) as tx:
        t = db.open_btree(ctx, "t", tx)
        assert t.get(ctx, "a") == 1
        assert t.get(ctx, "b") is None
        assert t.count() == 1


def test_explicit_commit_inside_with_is_fine(db, ctx):
    with db.begin_transaction(ctx) as tx:
        db.new_btree(ctx, "t", tx).add(ctx, "a", 1)
        tx.commit(ctx)
    with db.begin_transaction(ctx) as tx:
        assert db.open_btree(ctx, "t", tx).get(ctx, "a") == 1


def test_conflict_is_retryable(db, ctx):
    with db.begin_transaction(ctx) as tx:
        db.new_btree(ctx, "acct", tx).add(ctx, "balance", 100)
    t1, t2 = db.begin_transaction(ctx), db.begin_transaction(ctx)
    a, b = db.open_btree(ctx, "acct", t1), db.open_btree(ctx, "acct", t2)
    a.update(ctx, "balance", a.get(ctx, "balance") + 10)
    b.update(ctx, "balance", b.get(ctx, "balance") + 20)
    t1.commit()
    with pytest.raises(sop.ConflictError) as e:
        t2.commit()
    assert e.value.retryable and isinstance(e.value, sop.TransactionError)
    # Retrying as told succeeds.
    for _ in range(5):
        try:
            with db.begin_transaction(ctx) as tx:
                t = db.open_btree(ctx, "acct", tx)
                t.update(ctx, "balance", t.get(ctx, "balance") + 20)
            break
        except sop.SopError as err:
            assert err.retryable
    with db.begin_transaction(ctx) as tx:
        assert db.open_btree(ctx, "acct", tx).get(ctx, "balance") == 130


def test_closed_transaction_and_database(tmp_path, ctx):
    db = Database(DatabaseOptions(stores_folders=[str(tmp_path / "d")]))
    tx = db.begin_transaction(ctx)
    t = db.new_btree(ctx, "t", tx)
    t.add(ctx, "a", 1)
    tx.commit()
    with pytest.raises(sop.TransactionClosedError):
        t.add(ctx, "b", 2)
    with pytest.raises(sop.TransactionClosedError):
        tx.commit()
    with pytest.raises(sop.InvalidTransactionStateError):
        with tx:
            pass
    db.close()
    with pytest.raises(sop.DatabaseClosedError):
        db.begin_transaction(ctx)
    with pytest.raises(sop.DatabaseClosedError):
        db.stores()
    # Handles of the closed database's transaction hold the folder until they go.
    del t, tx
    # A read-only transaction refuses writes with a typed error.
    db2 = Database(DatabaseOptions(stores_folders=[str(tmp_path / "d")]))
    with pytest.raises(sop.TransactionStateError) as e:
        with db2.begin_transaction(ctx, mode=TransactionMode.ForReading) as ro:
            db2.open_btree(ctx, "t", ro).add(ctx, "c", 3)
    assert type(e.value) is sop.TransactionStateError  # not "closed": it was read-only
    # A max_time beyond any clock is capped, not a crash.
    with db2.begin_transaction(ctx, max_time=10**18) as tx:
        assert db2.open_btree(ctx, "t", tx).get(ctx, "a") == 1
    db2.close()


def test_second_process_folder_is_in_use(tmp_path, ctx):
    import subprocess
    import sys

    db = Database(DatabaseOptions(stores_folders=[str(tmp_path / "d")]))
    code = ("import sop\nfrom sop.database import Database, DatabaseOptions\n"
            f"try:\n    Database(DatabaseOptions(stores_folders=[{str(tmp_path / 'd')!r}]))\n"
            "except sop.InUseError:\n    print('in use')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "in use", out.stderr
    db.close()


def test_native_calls_release_the_gil(db, ctx):
    """While one thread is inside a long native call, another Python thread keeps running.

    A spinning thread notes the longest time it went without running. Were the GIL held
    during the call, that gap would be at least the call's length; released, it stays near
    the interpreter's switch interval.
    """
    from sop.btree import _items

    with db.begin_transaction(ctx) as tx:
        db.new_btree(ctx, "big", tx)
    state = {"last": None, "gap": 0.0}
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            now = time.perf_counter()
            if state["last"] is not None:
                state["gap"] = max(state["gap"], now - state["last"])
            state["last"] = now

    payload = _items([Item(key=f"k{i:07}", value="v" * 20) for i in range(200_000)], None)
    tx = db.begin_transaction(ctx)
    t = db.open_btree(ctx, "big", tx)
    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        time.sleep(0.05)
        state["gap"] = 0.0
        start = time.perf_counter()
        t._native.add(payload)  # one native call: parse and insert 200,000 items
        tx._native.commit()  # and one more: write and sync them
        took = time.perf_counter() - start
    finally:
        stop.set()
        spinner.join()
    assert took > 0.1, took  # long enough to tell
    assert state["gap"] < took / 4, (state["gap"], took)
    with db.begin_transaction(ctx, mode=TransactionMode.ForReading) as tx:
        assert db.open_btree(ctx, "big", tx).count() == 200_000


def test_two_threads_commit_concurrently(db, ctx):
    with db.begin_transaction(ctx) as tx:
        db.new_btree(ctx, "a", tx)
        db.new_btree(ctx, "b", tx)
    log = []
    lock = threading.Lock()
    errors = []

    def worker(name):
        try:
            for i in range(25):
                with db.begin_transaction(ctx) as tx:
                    db.open_btree(ctx, name, tx).add(ctx, [Item(key=f"{i}-{j}", value=j) for j in range(200)])
                with lock:
                    log.append(name)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with db.begin_transaction(ctx, mode=TransactionMode.ForReading) as tx:
        assert db.open_btree(ctx, "a", tx).count() == 25 * 200
        assert db.open_btree(ctx, "b", tx).count() == 25 * 200
    # Both made progress while the other ran: the log interleaves (not all of a, then all of b).
    switches = sum(1 for x, y in zip(log, log[1:]) if x != y)
    assert switches >= 2, "".join(log)
