"""Transactions, their modes and options, and the database options (sop4py's names)."""

from dataclasses import dataclass, field
from enum import Enum
from typing import Dict, List, Optional

from . import _sop
from .errors import TransactionClosedError, TransactionError  # noqa: F401 (sop4py names)


class TransactionMode(Enum):
    """What a transaction may do. ``NoCheck``: reads and writes with no commit checks (one
    writer doing bulk work); ``ForWriting``: reads and writes, fully checked; ``ForReading``:
    reads only, checked to be one consistent state."""

    NoCheck = 0
    ForWriting = 1
    ForReading = 2


class DatabaseType(Enum):
    """``Standalone``: one process owns the folder. ``Clustered``: many processes share it,
    coordinated through Redis."""

    Standalone = 0
    Clustered = 1


@dataclass
class ErasureCodingConfig:
    """sop4py's erasure coding settings (not taken from Python yet: see the README)."""

    data_shards_count: int
    parity_shards_count: int
    base_folder_paths_across_drives: List[str]
    repair_corrupted_shards: bool = False


@dataclass
class RedisCacheConfig:
    """Where Redis is, for clustered mode: ``url`` (``redis://host:port/db``), or ``address``
    (``host:port``), ``password`` and ``db``."""

    address: str = ""
    password: str = ""
    db: int = 0
    url: str = ""

    def to_url(self) -> str:
        if self.url:
            return self.url
        host = self.address or "127.0.0.1:6379"
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{host}/{self.db}"


@dataclass
class DatabaseOptions:
    """Where a database lives: ``stores_folders[0]`` is its folder (``storage_path`` says the
    same); ``type`` standalone or clustered (with ``redis_config``)."""

    type: DatabaseType = DatabaseType.Standalone
    erasure_config: Optional[Dict[str, ErasureCodingConfig]] = None
    stores_folders: Optional[List[str]] = None
    keyspace: Optional[str] = None
    registry_hash_mod: int = -1
    redis_config: Optional[RedisCacheConfig] = None
    storage_path: Optional[str] = None


@dataclass
class TransactionOptions(DatabaseOptions):
    """A transaction's mode and ``max_time`` (minutes, as in sop4py; 0: 15 minutes)."""

    mode: int = TransactionMode.ForWriting.value
    max_time: int = 0
    logging: bool = False


def _mode(mode) -> int:
    return mode.value if isinstance(mode, TransactionMode) else int(mode)


class Transaction:
    """One transaction. As a context manager it commits when the block ends normally and rolls
    back when it raises (the exception goes on)::

        with db.begin_transaction(ctx) as tx:
            users = db.new_btree(ctx, "users", tx)
            users.add(ctx, Item(key="u1", value="Ada"))
    """

    def __init__(self, native: "_sop.NativeTransaction", database=None):
        self._native = native
        self.database = database

    @property
    def id(self) -> str:
        return self._native.id

    @property
    def mode(self) -> TransactionMode:
        return TransactionMode(self._native.mode)

    def is_begun(self) -> bool:
        """Whether it can still be used."""
        return self._native.is_open

    def begin(self) -> None:
        """Transactions begin when made (kept for sop4py); raises when it has ended."""
        if not self._native.is_open:
            raise TransactionClosedError("the transaction has ended: begin a new one")

    def commit(self, ctx=None) -> None:
        """Commits. ``ConflictError`` (``retryable``): run the transaction again."""
        self._native.commit()

    def rollback(self, ctx=None) -> None:
        """Rolls back (nothing it wrote stays)."""
        self._native.rollback()

    def __enter__(self) -> "Transaction":
        self.begin()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            if self._native.is_open:
                self._native.rollback()
            return False
        if self._native.is_open:
            self._native.commit()
        return False

    def __repr__(self) -> str:
        state = "open" if self._native.is_open else "ended"
        return f"Transaction({self.id}, {self.mode.name}, {state})"
