"""A MIME leaf's body as a range of the raw email, read only when asked for (pure).

The standard library keeps every body as text (the raw bytes, ASCII with surrogate
escapes). For a 30 MB attachment that text is a second 40 MB copy of the email, held
for as long as the parsed email lives, and a third while it is being built. Large
bodies found by `mailflow.inbound.fastmime` are kept as a range of the raw email
instead: the same text, made from the raw bytes each time it is asked for, so a body
nobody reads costs nothing and one that is read costs its size only while it is used.

The raw email is either in memory (`RawBody`, over the bytes that were parsed) or in a
file (`FileBody`, over the downloaded spool): then not even the raw email stays in
memory once parsed, and a 40 MB email costs its attachment's 30 MB while that one is
being stored, not 70 MB for as long as the email is being delivered.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass

# Bodies smaller than this are kept as text: reading them again on each use would cost
# more than the memory saved.
LAZY_BYTES = 64 * 1024
_STEP = 1024 * 1024  # bytes checked at a time (a copy of this many, not of the body)


def _text(data: bytes | memoryview) -> str:
    """Raw bytes as the standard library holds a body: ASCII, other bytes escaped."""
    return str(data, "ascii", "surrogateescape")


@dataclass(frozen=True, slots=True)
class RawBody:
    """`data[start:stop]`: a body as the feed parser would have kept it, not yet made."""

    data: bytes
    start: int
    stop: int

    def text(self) -> str:
        with memoryview(self.data) as view:
            return _text(view[self.start : self.stop])

    def ascii_bytes(self) -> memoryview | None:
        """The raw bytes (no copy) when they are all ASCII, so that `text()` would be
        exactly them; None otherwise."""
        data = self.data
        if data.isascii() or all(
            data[i : min(i + _STEP, self.stop)].isascii()
            for i in range(self.start, self.stop, _STEP)
        ):
            return memoryview(data)[self.start : self.stop]
        return None

    def without_eol(self) -> RawBody:
        """The body less one trailing line ending, as the feed parser strips the line
        ending that precedes a boundary (it belongs to the boundary, RFC 2046)."""
        stop = self.stop
        if stop - self.start >= 2 and self.data[stop - 2 : stop] == b"\r\n":
            stop -= 2
        elif stop > self.start and self.data[stop - 1] in (10, 13):
            stop -= 1
        return RawBody(self.data, self.start, stop)

    def in_file(self, file: SharedFile, offset: int) -> FileBody:
        """The same body, read from `file` where `data` begins at `offset`."""
        return FileBody(file, offset + self.start, offset + self.stop)


class SharedFile:
    """A file descriptor of its own onto the raw email's file, closed when the last body
    using it is gone: the bodies stay readable whatever happens to the caller's file
    object, and no descriptor number is ever read after it was reused."""

    def __init__(self, fd: int) -> None:
        self.fd = os.dup(fd)
        weakref.finalize(self, os.close, self.fd)

    def __copy__(self) -> SharedFile:
        return self  # a copy closing the descriptor under the original would be a bug

    def __deepcopy__(self, memo: object) -> SharedFile:
        return self

    def read(self, start: int, stop: int) -> bytes:
        pieces: list[bytes] = []
        while start < stop:
            piece = os.pread(self.fd, stop - start, start)
            if not piece:
                raise OSError(f"the raw email's file ends at {start}, before {stop}")
            pieces.append(piece)
            start += len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


@dataclass(frozen=True, slots=True)
class FileBody:
    """A body as a range of the raw email's file, read (`pread`) each time it is used."""

    file: SharedFile
    start: int
    stop: int

    def text(self) -> str:
        return _text(self.file.read(self.start, self.stop))

    def ascii_bytes(self) -> bytes | None:
        data = self.file.read(self.start, self.stop)
        return data if data.isascii() else None


LazyBody = RawBody | FileBody
