"""The exceptions sop raises. Every one derives from :class:`SopError`.

``retryable`` says whether running the transaction again, unchanged, can succeed: it is
``True`` only for :class:`ConflictError` (another transaction changed what this one used).
"""


class SopError(Exception):
    """Base of every sop error."""

    retryable = False


class UsageError(SopError):
    """The call was wrong for the input or the state: fix the call."""


class InvalidArgumentError(UsageError, ValueError):
    """An argument was refused: a key of the wrong shape for the store's index specification,
    a vector of the wrong dimension, bad options."""


class InvalidKeyError(InvalidArgumentError, TypeError):
    """A key or value that cannot be stored (not JSON: a set, an object without a dataclass)."""


class StoreNotFoundError(UsageError):
    """No store has that name."""


class StoreExistsError(UsageError):
    """A store of that name exists already."""


class InUseError(UsageError):
    """The database folder is in use by another process (standalone mode)."""


class TransactionStateError(UsageError):
    """The call does not fit the transaction: a write in a read-only one, a store opened twice
    in one transaction (use the handle you have)."""


class TransactionClosedError(TransactionStateError):
    """The transaction has ended (committed, rolled back or failed): begin a new one."""


class DatabaseClosedError(UsageError):
    """The database was closed: open it again."""


class TransactionError(SopError):
    """The transaction did not commit."""


class ConflictError(TransactionError):
    """Another transaction changed what this one read or wrote: run it again."""

    retryable = True


class TransactionTimeoutError(TransactionError):
    """The transaction ran past its ``max_time``: give it more time or make it smaller."""


class CorruptionError(SopError):
    """Stored bytes are damaged or missing (the message names the file and offset)."""


class StorageError(SopError):
    """The storage failed (an I/O error)."""


class CoordinationError(SopError):
    """Redis (clustered mode) failed: check it; retrying later can succeed."""


#: sop4py's name for a transaction used in the wrong state.
InvalidTransactionStateError = TransactionClosedError

__all__ = [
    "SopError", "UsageError", "InvalidArgumentError", "InvalidKeyError", "StoreNotFoundError",
    "StoreExistsError", "InUseError", "TransactionStateError", "TransactionClosedError", "DatabaseClosedError",
    "TransactionError", "ConflictError", "TransactionTimeoutError", "CorruptionError",
    "StorageError", "CoordinationError", "InvalidTransactionStateError",
]
