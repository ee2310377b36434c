import pytest

from sop import Context
from sop.database import Database, DatabaseOptions


@pytest.fixture
def ctx():
    return Context()


@pytest.fixture
def db(tmp_path):
    d = Database(DatabaseOptions(stores_folders=[str(tmp_path / "db")]))
    yield d
    d.close()
