"""Vector, model, search and streaming stores from Python: round trips."""

import io
import random

import pytest

import sop
from sop import TransactionMode
from sop.ai import Item as VectorItem


def test_vector_round_trip(db, ctx):
    rng = random.Random(7)
    vecs = {f"v{i}": [rng.uniform(-1, 1) for _ in range(16)] for i in range(300)}
    with db.begin_transaction(ctx) as tx:
        vs = db.open_vector_store(ctx, tx, "emb", metric="l2")
        assert vs.count(ctx) == 0 and vs.query(ctx, [0.0] * 16, k=3) == []
        vs.upsert_batch(ctx, [VectorItem(id=k, vector=v, payload={"n": int(k[1:]), "even": int(k[1:]) % 2 == 0})
                              for k, v in vecs.items()])
    with db.begin_transaction(ctx) as tx:
        vs = db.open_vector_store(ctx, tx, "emb")
        assert vs.count(ctx) == 300
        got = vs.get(ctx, "v42")
        assert got.payload == {"n": 42, "even": True}
        assert got.vector == pytest.approx(vecs["v42"], rel=1e-6)
        hits = vs.query(ctx, vecs["v7"], k=5)
        assert hits[0].id == "v7" and hits[0].score == pytest.approx(0.0, abs=1e-5)
        brute = sorted(vecs, key=lambda k: sum((a - b) ** 2 for a, b in zip(vecs[k], vecs["v7"])))[:5]
        assert [h.id for h in hits] == brute
        only_even = vs.query(ctx, vecs["v7"], k=5, filter={"even": True})
        assert only_even and all(h.payload["even"] for h in only_even)
        assert vs.delete(ctx, "v7") and not vs.delete(ctx, "v7")
        assert vs.get(ctx, "v7") is None
        with pytest.raises(sop.InvalidArgumentError):
            vs.upsert(ctx, VectorItem(id="short", vector=[1.0, 2.0], payload={}))
        with pytest.raises(sop.InvalidArgumentError):
            vs.query(ctx, vecs["v1"], k=0)
    with db.begin_transaction(ctx, mode=TransactionMode.ForReading) as tx:
        vs = db.open_vector_store(ctx, tx, "emb")
        report = vs.optimize(ctx)
        assert report["centroids"] >= 1
    with db.begin_transaction(ctx, mode=TransactionMode.ForReading) as tx:
        vs = db.open_vector_store(ctx, tx, "emb")
        assert vs.count(ctx) == 299
        assert vs.query(ctx, vecs["v8"], k=1, nprobe=64)[0].id == "v8"


def test_vector_rollback_leaves_nothing(db, ctx):
    with pytest.raises(ZeroDivisionError):
        with db.begin_transaction(ctx) as tx:
            vs = db.open_vector_store(ctx, tx, "gone")
            vs.upsert(ctx, VectorItem(id="a", vector=[1.0, 0.0], payload={}))
            1 / 0
    with db.begin_transaction(ctx) as tx:
        assert db.open_vector_store(ctx, tx, "gone").count(ctx) == 0


def test_model_store(db, ctx):
    with db.begin_transaction(ctx) as tx:
        ms = db.open_model_store(ctx, tx, "models")
        assert ms.save(ctx, "churn", "forest", {"trees": 100}) == 1
        assert ms.save(ctx, "churn", "forest", {"trees": 200}) == 2
        ms.save(ctx, "churn", "linear", {"weights": [0.5, -1.25]})
        ms.save(ctx, "vision", "cnn", {"layers": 12})
    with db.begin_transaction(ctx) as tx:
        ms = db.open_model_store(ctx, tx, "models")
        assert ms.get(ctx, "churn", "forest") == {"trees": 200}
        assert ms.get(ctx, "churn", "forest", version=1) == {"trees": 100}
        assert ms.versions(ctx, "churn", "forest") == [1, 2]
        assert sorted(ms.list(ctx, "churn")) == ["forest", "linear"]
        assert sorted(ms.categories(ctx)) == ["churn", "vision"]
        assert ms.get(ctx, "churn", "missing") is None
        assert ms.delete(ctx, "churn", "forest") == 2
        assert ms.get(ctx, "churn", "forest") is None
        assert ms.delete(ctx, "churn", "forest") == 0


def test_search_like_sop4py(db, ctx):
    with db.begin_transaction(ctx) as tx:
        idx = db.open_search(ctx, "docs", tx)
        idx.add("doc1", "hello world")
        idx.add("doc2", "hello python")
    with db.begin_transaction(ctx, mode=TransactionMode.ForReading) as tx:
        idx = db.open_search(ctx, "docs", tx)
        assert {r.DocID for r in idx.search("hello")} == {"doc1", "doc2"}
        res = idx.search("python")
        assert [r.doc_id for r in res] == ["doc2"] and res[0].score > 0
        assert idx.search("absent") == []
        assert idx.count() == 2


def test_streaming_file_objects(db, ctx):
    data = bytes(random.Random(3).getrandbits(8) for _ in range(300_000))
    with db.begin_transaction(ctx) as tx:
        fs = db.open_streaming_store(ctx, tx, "files", chunk_size=64 * 1024)
        with fs.open("blob", "wb") as f:
            for i in range(0, len(data), 10_000):
                f.write(data[i:i + 10_000])
        with fs.open("blob", "ab") as f:
            f.write(b"tail")
    with db.begin_transaction(ctx, mode=TransactionMode.ForReading) as tx:
        fs = db.open_streaming_store(ctx, tx, "files")
        assert fs.size("blob") == len(data) + 4
        with fs.open("blob", "rb") as f:
            assert f.read() == data + b"tail"
            f.seek(123_456)
            assert f.read(10) == data[123_456:123_466]
            f.seek(-4, io.SEEK_END)
            assert f.read() == b"tail"
        assert fs.read_at("blob", 70_000, 5) == data[70_000:70_005]
        # A huge n reads what is there (no huge buffer), across chunks.
        assert fs.read_at("blob", 10, 1 << 40) == data[10:] + b"tail"
        assert fs.open("missing", "rb") is None
        assert fs.keys() == ["blob"]
    with db.begin_transaction(ctx) as tx:
        fs = db.open_streaming_store(ctx, tx, "files")
        fs.write_at("blob", 0, b"HEAD")
        fs.truncate("blob", 10)
        assert fs.get("blob") == b"HEAD" + data[4:10]
        fs.put("small", b"xyz")
        assert fs.remove("small")


def test_unclosed_writer_blocks_the_commit(db, ctx):
    tx = db.begin_transaction(ctx)
    fs = db.open_streaming_store(ctx, tx, "files", chunk_size=1024)
    f = fs.open("half", "wb")
    f.write(b"x" * 5000)
    f.flush()
    with pytest.raises(sop.UsageError, match="writer"):
        tx.commit()
    with db.begin_transaction(ctx) as tx2:
        assert db.open_streaming_store(ctx, tx2, "files").get("half") is None
    with pytest.raises(sop.InvalidArgumentError):
        fs.open("x", "r+b")
