"""B-trees from Python: CRUD, paging, complex keys, bad input."""

from dataclasses import dataclass

import pytest

import sop
from sop import Item, PagingDirection, PagingInfo, TransactionMode
from sop.btree import IndexFieldSpecification, IndexSpecification


def test_crud(db, ctx):
    with db.begin_transaction(ctx) as tx:
        t = db.new_btree(ctx, "users", tx)
        assert t.add(ctx, Item(key="u1", value={"name": "Ada"}))
        assert t.add(ctx, "u2", "Bob")
        assert t.add(ctx, [Item(key=f"u{i}", value=i) for i in range(3, 10)])
        assert not t.update(ctx, Item(key="nope", value=1))
        assert t.update(ctx, Item(key="u2", value="Robert"))
        assert t.upsert(ctx, Item(key="u10", value=10))
        assert t.count() == 10
    with db.begin_transaction(ctx) as tx:
        t = db.open_btree(ctx, "users", tx)
        assert t.get(ctx, "u1") == {"name": "Ada"}
        assert t.get(ctx, "u2") == "Robert"
        assert t.find(ctx, "u5")
        assert t.get_current_item(ctx).value == 5
        assert not t.find(ctx, "zzz")
        assert t.remove(ctx, ["u3", "u4"])
        assert not t.remove(ctx, "u3")
        assert t.count() == 8
    with db.begin_transaction(ctx, mode=TransactionMode.ForReading) as tx:
        t = db.open_btree(ctx, "users", tx)
        assert t.get(ctx, "u3") is None
        assert t.first(ctx) and t.get_current_key(ctx).key == "u1"
        assert t.next(ctx) and t.get_current_key(ctx).key == "u10"
        assert t.last(ctx) and t.get_current_key(ctx).key == "u9"
        assert t.previous(ctx) and t.get_current_key(ctx).key == "u8"


def test_paging_both_ways(db, ctx):
    keys = [f"k{i:03}" for i in range(95)]
    with db.begin_transaction(ctx) as tx:
        t = db.new_btree(ctx, "pages", tx)
        t.add(ctx, [Item(key=k, value=i) for i, k in enumerate(keys)])
    with db.begin_transaction(ctx, mode=TransactionMode.ForReading) as tx:
        t = db.open_btree(ctx, "pages", tx)
        t.first(ctx)
        seen = []
        while True:
            page = t.get_items(ctx, PagingInfo(page_size=10))
            if not page:
                break
            seen += [(i.key, i.value) for i in page]
        assert seen == [(k, i) for i, k in enumerate(keys)]
        # An offset skips pages; fetch_count fetches a given number.
        t.first(ctx)
        page = t.get_keys(ctx, PagingInfo(page_offset=2, page_size=10, fetch_count=3))
        assert [i.key for i in page] == keys[20:23]
        assert all(i.value is None for i in page)
        # Backward from the end.
        t.last(ctx)
        page = t.get_keys(ctx, PagingInfo(page_size=5, direction=PagingDirection.Backward.value))
        assert [i.key for i in page] == keys[-1:-6:-1]
        with pytest.raises(sop.InvalidArgumentError):
            t.get_keys(ctx, PagingInfo(page_size=5, direction=7))


@dataclass
class EmployeeKey:
    region: str
    department: str
    id: int


def test_dataclass_keys_in_spec_order(db, ctx):
    spec = IndexSpecification(index_fields=(
        IndexFieldSpecification("region", ascending_sort_order=True),
        IndexFieldSpecification("department", ascending_sort_order=True),
        IndexFieldSpecification("id", ascending_sort_order=False),
    ))
    people = [EmployeeKey(r, d, i) for r in ("US", "EU") for d in ("Sales", "Ops") for i in (3, 1, 2)]
    with db.begin_transaction(ctx) as tx:
        t = db.new_btree(ctx, "employees", tx, index_spec=spec)
        for p in people:
            assert t.add(ctx, Item(key=p, value={"name": f"{p.region}-{p.department}-{p.id}"}))
    with db.begin_transaction(ctx) as tx:
        t = db.open_btree(ctx, "employees", tx)  # the spec comes from disk
        t.first(ctx)
        got = [(i.key["region"], i.key["department"], i.key["id"])
               for i in t.get_keys(ctx, PagingInfo(page_size=100))]
        want = sorted(((p.region, p.department, p.id) for p in people), key=lambda k: (k[0], k[1], -k[2]))
        assert got == want
        assert t.find(ctx, {"region": "US", "department": "Sales", "id": 2})
        assert t.get_current_item(ctx).value == {"name": "US-Sales-2"}
        assert t.find(ctx, EmployeeKey("EU", "Ops", 3))
        # A key that is not an object cannot be ordered by the spec.
        with pytest.raises(sop.InvalidArgumentError):
            t.add(ctx, Item(key="just a string", value=1))


def test_bad_input_is_a_typed_exception(db, ctx):
    with db.begin_transaction(ctx) as tx:
        t = db.new_btree(ctx, "t", tx)
        with pytest.raises(sop.InvalidKeyError):
            t.add(ctx, Item(key={1, 2}, value=1))
        with pytest.raises(sop.InvalidKeyError):
            t.add(ctx, Item(key=float("nan"), value=1))
        with pytest.raises(sop.InvalidKeyError):
            t.add(ctx, Item(key="k", value=object()))
        with pytest.raises(sop.InvalidArgumentError):
            t.find_with_id(ctx, "k", "not-a-uuid")
        # Integers beyond 64 bits would come back as floats (and collide): refused.
        with pytest.raises(sop.InvalidKeyError):
            t.add(ctx, Item(key=2**64 + 1, value="x"))
        with pytest.raises(sop.InvalidKeyError):
            t.find(ctx, {"id": -(2**70)})
        assert t.add(ctx, Item(key=2**64 - 1, value="max")) and t.get(ctx, 2**64 - 1) == "max"
        assert t.add(ctx, Item(key="1" * 30, value="digits in a string are fine"))
        with pytest.raises(sop.TransactionStateError) as e:
            db.new_btree(ctx, "t", tx)  # open in this transaction already
        assert type(e.value) is sop.TransactionStateError
        # A store name with the word of an ended transaction in it changes nothing.
        db.new_btree(ctx, "ended", tx)
        with pytest.raises(sop.TransactionStateError) as e:
            db.new_btree(ctx, "ended", tx)
        assert type(e.value) is sop.TransactionStateError
    with db.begin_transaction(ctx) as tx:
        with pytest.raises(sop.StoreExistsError):
            db.new_btree(ctx, "t", tx)
        with pytest.raises(sop.StoreNotFoundError):
            db.open_btree(ctx, "missing", tx)
        with pytest.raises(sop.InvalidArgumentError):
            db.new_btree(ctx, "bad/name", tx)
        with pytest.raises(sop.InvalidArgumentError):
            db.begin_transaction(ctx, mode=9)


def test_non_unique_keys_by_id(db, ctx):
    from sop import BtreeOptions

    with db.begin_transaction(ctx) as tx:
        t = db.new_btree(ctx, "dups", tx, options=BtreeOptions(is_unique=False))
        assert t.add(ctx, [Item(key="k", value=1), Item(key="k", value=2)])
        t.first(ctx)
        items = t.get_items(ctx, PagingInfo(page_size=10))
        assert sorted(i.value for i in items) == [1, 2]
        second = items[1]
        assert t.find_with_id(ctx, "k", second.id)
        assert t.get_current_item(ctx).value == second.value
        vals = t.get_values(ctx, [Item(key="k", id=i.id) for i in items])
        assert [v.value for v in vals] == [i.value for i in items]
