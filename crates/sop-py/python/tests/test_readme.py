"""sop4py's README Quick Start, as written there (with the store it reads back named as the one
it wrote)."""

from dataclasses import dataclass


def test_sop4py_readme_quick_start(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    from sop import Context, TransactionMode, TransactionOptions, Btree, BtreeOptions, Item  # noqa: F401
    from sop.ai import Database, DatabaseType, Item as VectorItem
    from sop.database import DatabaseOptions

    ctx = Context()
    db = Database(DatabaseOptions(stores_folders=["data/my_db"], type=DatabaseType.Standalone))

    with db.begin_transaction(ctx) as tx:
        vector_store = db.open_vector_store(ctx, tx, "products")
        vector_store.upsert(ctx, VectorItem(id="prod_101", vector=[0.1, 0.5, 0.9],
                                            payload={"name": "Laptop", "price": 999}))
        model_store = db.open_model_store(ctx, tx, "classifiers")
        model_store.save(ctx, "churn", "v1.0", {"algorithm": "random_forest", "trees": 100})
        btree = db.new_btree(ctx, "users", tx)
        btree.add(ctx, Item(key="user_123", value="John Doe"))
        if btree.find(ctx, "user_123"):
            items = btree.get_values(ctx, Item(key="user_123"))
            if items and items[0].value:
                print(f"Found User: {items[0].value}")

        from sop.btree import IndexSpecification, IndexFieldSpecification

        @dataclass
        class EmployeeKey:
            region: str
            department: str
            id: int

        spec = IndexSpecification(index_fields=(
            IndexFieldSpecification("region", ascending_sort_order=True),
            IndexFieldSpecification("department", ascending_sort_order=True),
            IndexFieldSpecification("id", ascending_sort_order=True)
        ))
        employees = db.new_btree(ctx, "employees", tx, index_spec=spec)
        employees.add(ctx, Item(key=EmployeeKey("US", "Sales", 101), value={"name": "Alice"}))
        employees_read = db.open_btree(ctx, "employees", tx)
        if employees_read.find(ctx, {"region": "US", "department": "Sales", "id": 101}):
            print("Found Alice!")
        idx = db.open_search(ctx, "articles", tx)
        idx.add("doc1", "The quick brown fox")

    with db.begin_transaction(ctx, mode=TransactionMode.ForReading.value) as tx:
        vs = db.open_vector_store(ctx, tx, "products")
        hits = vs.query(ctx, vector=[0.1, 0.5, 0.8], k=5)
        for hit in hits:
            print(f"Vector Match: {hit.id}, Score: {hit.score:.3f}")
        ms = db.open_model_store(ctx, tx, "classifiers")
        model = ms.get(ctx, "churn", "v1.0")
        print(f"Loaded Model: {model['algorithm']}")
        us = db.open_btree(ctx, "users", tx)
        if us.find(ctx, "user_123"):
            item = us.get_current_item(ctx)
            print(f"User Found: {item.value}")

    with db.begin_transaction(ctx, mode=TransactionMode.NoCheck.value) as tx:
        vs = db.open_vector_store(ctx, tx, "products")
        hits = vs.query(ctx, vector=[0.1, 0.5, 0.8], k=5)
        assert [h.id for h in hits] == ["prod_101"]

    out = capsys.readouterr().out.splitlines()
    assert out == ["Found User: John Doe", "Found Alice!", "Vector Match: prod_101, Score: 0.999",
                   "Loaded Model: random_forest", "User Found: John Doe"]
    assert (tmp_path / "data" / "my_db").is_dir()
