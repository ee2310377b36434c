"""Streamed byte values of any size, read and written like files."""

import io
from typing import List, Optional

from .errors import InvalidArgumentError


class _RawStream(io.RawIOBase):
    def __init__(self, native, writable: bool):
        super().__init__()
        self._n = native
        self._w = writable

    def readable(self) -> bool:
        return not self._w

    def writable(self) -> bool:
        return self._w

    def seekable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._n.read(len(b))
        b[: len(data)] = data
        return len(data)

    def write(self, b) -> int:
        return self._n.write(bytes(b))

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._n.seek(offset, whence)

    def tell(self) -> int:
        return self._n.tell()

    def close(self) -> None:
        if not self.closed:
            try:
                self._n.close()
            finally:
                super().close()


class StreamingStore:
    """Values of any size, chunked across a B-tree, in the transaction that opened it::

        files = db.open_streaming_store(ctx, tx, "files")
        with files.open("big.bin", "wb") as f:
            f.write(data)
        with files.open("big.bin", "rb") as f:
            f.seek(1000); part = f.read(10)

    A writer must be closed before the transaction commits (``with`` does it); the commit
    refuses otherwise, so half a value is never stored.
    """

    def __init__(self, native):
        self._native = native

    def open(self, key: str, mode: str = "rb", buffering: int = 1 << 20):
        """A file object over ``key``'s value: "rb" (``None`` when there is none), "wb"
        (replace) or "ab" (append)."""
        m = mode.replace("b", "")
        if m == "r":
            r = self._native.reader(str(key))
            if r is None:
                return None
            return io.BufferedReader(_RawStream(r, False), buffering)
        if m in ("w", "a"):
            return io.BufferedWriter(_RawStream(self._native.writer(str(key), m), True), buffering)
        raise InvalidArgumentError(f"mode {mode!r} is not 'rb', 'wb' or 'ab'")

    def put(self, key: str, data: bytes) -> None:
        self._native.put(str(key), bytes(data))

    def get(self, key: str) -> Optional[bytes]:
        return self._native.get(str(key))

    def size(self, key: str) -> Optional[int]:
        return self._native.size(str(key))

    def read_at(self, key: str, offset: int, n: int) -> bytes:
        return self._native.read_at(str(key), offset, n)

    def write_at(self, key: str, offset: int, data: bytes) -> None:
        self._native.write_at(str(key), offset, bytes(data))

    def truncate(self, key: str, length: int) -> None:
        self._native.truncate(str(key), length)

    def remove(self, key: str) -> bool:
        return self._native.remove(str(key))

    def keys(self) -> List[str]:
        return self._native.keys()
