"""The feed parser's algorithm over a whole email: bodies found with `bytes.find`, not line by line.

`email.feedparser` reads an email a line at a time and tests every line against every
enclosing boundary: 40 MB of base64 is 540,000 lines and about a second of CPU. This
module runs the same algorithm, a port of `FeedParser._parsegen` (CPython 3.11 to 3.13
agree on it), over the complete email held in memory. Every decision the feed parser
makes on a line (header or body, boundary or not, which defect) is made here on the
same line by the same code: its `_parse_headers`, `_new_message` and `_pop_message`,
our policy and `BoundedPart`. Only the runs of lines that the feed parser merely
collects (a body, a preamble, an epilogue, what follows a missing boundary) are found
by searching for the next boundary line, and kept as one slice; a large body is kept
as a `RawBody` (a range of the raw email) rather than as text.

The limits of `mailflow.inbound.mime` hold as they do there: parts, nesting and headers
are counted by the same `BoundedPart`, and the email is cut where the feed parser stops
being fed (`MAX_LINES`). The search for boundary lines remembers how far it has looked,
so each byte is searched a bounded number of times however the parts are nested.

Anything the port does not expect (an exception other than the part limit) makes
`build_tree_fast` parse the email again with the feed parser, whose answer stands:
identical output is the contract, speed only the aim. `tests/unit/inbound/
test_parse_equivalence.py` holds the two to the same tree.
"""

from __future__ import annotations

import email.feedparser
import re
from collections.abc import Callable
from email import errors
from email.feedparser import FeedParser
from email.message import Message
from typing import Any

from mailflow.inbound.body import LAZY_BYTES, RawBody
from mailflow.inbound.mime import (
    CHUNK,
    MAX_LINES,
    BoundedPart,
    ParseState,
    SafePolicy,
    TooManyLines,
    _Stop,
    build_tree,
)

# The feed parser's own line tests (not in the type stubs), so that they cannot drift.
_FEED: Any = email.feedparser
NLCRE, NLCRE_bol, NLCRE_eol = _FEED.NLCRE, _FEED.NLCRE_bol, _FEED.NLCRE_eol
headerRE = _FEED.headerRE
_EOL = re.compile(rb"\r\n?|\n")
# The feed parser's boundary-line test after the separator (3.13 spells it this way).
_BOUNDARY_END = re.compile(r"(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")
# Non-line-start occurrences of a separator a search may skip, one at a time, before it
# looks for line starts instead (text such as `--x--x--x` would otherwise cost a Python
# step per occurrence).
_MISSES = 64


def build_tree_fast(data: bytes) -> Message:
    """The tree `mime.build_tree` makes of `data` fed in CHUNK pieces, made without
    feeding it line by line. Raises what `build_tree` raises."""
    try:
        return port_tree(data)
    except MemoryError:
        raise
    except Exception:  # the stdlib raised inside (or the port did): the feed parser decides
        return build_tree(data[i : i + CHUNK] for i in range(0, len(data), CHUNK))


def port_tree(data: bytes) -> Message:
    """The port alone, without the feed parser to fall back on (for tests): raises what
    the standard library raised inside it."""
    cut = _line_cut(data)
    return _FastParser(data, len(data) if cut is None else cut).parse(truncated=cut is not None)


def _line_cut(data: bytes) -> int | None:
    """Where `build_tree` stops feeding: after the CHUNK whose lines pass MAX_LINES.

    `build_tree` counts each chunk's `\\n`, `\\r` and `\\r\\n`; a `\\r\\n` split between two
    chunks counts twice. Whole-email counts bound that sum cheaply (a line has a byte at
    least; the split pairs are at most one per chunk), so the chunks are only counted
    one by one when the bounds cannot tell.
    """
    if len(data) <= MAX_LINES:
        return None
    newlines = data.count(b"\n")
    if newlines <= MAX_LINES:
        returns = data.count(b"\r")
        if newlines + returns <= MAX_LINES:
            return None
        split_pairs = len(data) // CHUNK + 1
        if newlines + returns - data.count(b"\r\n") + split_pairs <= MAX_LINES:
            return None
    lines = 0
    for start in range(0, len(data), CHUNK):
        chunk = data[start : start + CHUNK]
        lines += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
        if lines > MAX_LINES:
            return start + len(chunk)
    return None


class _Occurrences:
    """Where one byte pattern occurs in `data`, remembered between questions.

    Callers ask for the first occurrence starting in [start, stop) with `start` never
    decreasing; what has been searched is not searched again, however far or often
    they ask.
    """

    def __init__(self, data: bytes, pattern: bytes) -> None:
        self.data = data
        self.pattern = pattern
        self.low = 0  # no occurrence starts in [low, high) except `found`
        self.high = 0
        self.found = -1

    def first(self, start: int, stop: int) -> int:
        if start > self.high or (self.found != -1 and start > self.found):
            self.low = self.high = start
            self.found = -1
        if self.found != -1:
            return self.found if self.found < stop else -1
        if self.high >= stop:
            return -1
        end = min(len(self.data), stop + len(self.pattern) - 1)
        found = self.data.find(self.pattern, self.high, end)
        if found == -1:
            self.high = stop
        else:
            self.found, self.high = found, found + 1
        return found


class _Boundary:
    """One multipart's boundary: the feed parser's test for its lines, and a search for them."""

    def __init__(self, separator: str, data: bytes, end: int) -> None:
        self.separator = separator
        self.data = data
        self.end = end
        try:
            needle: bytes | None = separator.encode("ascii", "surrogateescape")
        except UnicodeEncodeError:  # no line of ASCII and escaped bytes can start with it
            needle = None
        self.needle = needle
        self.anywhere = _Occurrences(data, needle or b"")
        self.after_lf = _Occurrences(data, b"\n" + (needle or b""))
        self.after_cr = _Occurrences(data, b"\r" + (needle or b""))
        self.misses = 0
        self.asked: tuple[int, int, int] = (-1, -1, -1)  # (start, stop, answer)

    def __call__(self, line: str) -> re.Match[str] | None:
        if not line.startswith(self.separator):
            return None
        return _BOUNDARY_END.match(line, len(self.separator))

    def first_line(self, start: int, stop: int) -> int:
        """Where the first line in [start, stop) that is this boundary begins, or -1.
        `start` is the beginning of a line."""
        if self.needle is None:
            return -1
        asked_start, asked_stop, answer = self.asked
        if start == asked_start and (answer != -1 or stop <= asked_stop):
            return answer if answer < stop else -1
        answer = self._search(start, stop)
        self.asked = (start, stop, answer)
        return answer

    def _search(self, start: int, stop: int) -> int:
        at = start
        while at < stop:
            begin = self._next_line_start(at, start, stop)
            if begin == -1:
                return -1
            if self(_line_at(self.data, begin, self.end)):
                return begin
            at = begin + 1
        return -1

    def _next_line_start(self, at: int, start: int, stop: int) -> int:
        """The first line start in [at, stop) where the separator begins, or -1."""
        while self.misses < _MISSES:
            found = self.anywhere.first(at, stop)
            if found in (-1, start) or self.data[found - 1] in (10, 13):
                return found
            self.misses += 1
            at = found + 1
        # Many occurrences inside lines: look for line starts (two patterns) instead.
        if at == start and self.data.startswith(self.needle or b"", at):
            return at
        first = -1
        for occurrences in (self.after_lf, self.after_cr):
            found = occurrences.first(max(at - 1, 0), stop - 1)
            if found != -1 and (first == -1 or found + 1 < first):
                first = found + 1
        return first


def _line_at(data: bytes, start: int, end: int) -> str:
    """The line that begins at `start`, its line ending included, as the feed parser has it."""
    match = _EOL.search(data, start, end)
    return data[start : match.end() if match else end].decode("ascii", "surrogateescape")


_Matcher = Callable[[str], Any]


class _Input:
    """`BufferedSubFile` over a complete email: the same lines and false ends, plus the
    bulk read of everything up to the next false end."""

    def __init__(self, data: bytes, end: int) -> None:
        self.data = data
        self.end = end
        self.pos = 0  # always the start of a line; it never moves back
        self.unread: list[str] = []  # pushed-back lines, the last one read first
        self.eofstack: list[_Matcher] = []

    def push_eof_matcher(self, pred: _Matcher) -> None:
        self.eofstack.append(pred)

    def pop_eof_matcher(self) -> _Matcher:
        return self.eofstack.pop()

    def unreadline(self, line: str) -> None:
        self.unread.append(line)

    def _at_eof(self, line: str) -> bool:
        return any(ateof(line) for ateof in reversed(self.eofstack))

    def readline(self) -> str:
        if self.unread:
            line = self.unread.pop()
            if self._at_eof(line):
                self.unread.append(line)
                return ""
            return line
        if self.pos >= self.end:
            return ""
        match = _EOL.search(self.data, self.pos, self.end)
        stop = match.end() if match else self.end
        line = self.data[self.pos : stop].decode("ascii", "surrogateescape")
        if self._at_eof(line):
            return ""
        self.pos = stop
        return line

    def read_until(self, extra: _Boundary | None = None) -> tuple[str, int, int]:
        """Every line up to the next false end (or, with `extra`, a line it matches),
        which is left unread: as text (pushed-back lines) and a range of the email."""
        head: list[str] = []
        while self.unread:
            line = self.readline()
            if not line:
                return "".join(head), self.pos, self.pos
            if extra is not None and extra(line):
                self.unread.append(line)
                return "".join(head), self.pos, self.pos
            head.append(line)
        if not all(isinstance(m, _Boundary) for m in self.eofstack):
            # A message/delivery-status block ends at a blank line: rare and small.
            while (line := self.readline()) and not (extra is not None and extra(line)):
                head.append(line)
            if line:
                self.unread.append(line)
            return "".join(head), self.pos, self.pos
        stop = self.end
        # Outermost first: each boundary's search ends where an outer one's line is.
        for matcher in [*self.eofstack, extra]:
            if isinstance(matcher, _Boundary):
                found = matcher.first_line(self.pos, stop)
                if found != -1:
                    stop = found
        start, self.pos = self.pos, stop
        return "".join(head), start, stop

    def read_text(self, extra: _Boundary | None = None) -> str:
        head, start, stop = self.read_until(extra)
        return head + self.data[start:stop].decode("ascii", "surrogateescape")


class _FastParser(FeedParser):
    """FeedParser whose `_parsegen` is a plain recursive method over `_Input`."""

    # FeedParser's own state and helpers (not in the type stubs), used as they are.
    policy: SafePolicy
    _cur: Any
    _last: Any
    _msgstack: list[Message]
    _new_message: Callable[[], None]
    _pop_message: Callable[[], Message]
    _parse_headers: Callable[[list[str]], None]

    def __init__(self, data: bytes, end: int) -> None:
        self.state = ParseState()
        super().__init__(policy=SafePolicy(self.state))
        self.data = data
        self._input: Any = _Input(data, end)
        self._in_message = 0  # inside a message/* part: bodies there stay text

    def parse(self, *, truncated: bool) -> Message:
        try:
            self._entity()
            root: Message = self._pop_message()
            assert not self._msgstack
            if root.get_content_maintype() == "multipart" and not root.is_multipart():
                self.policy.handle_defect(root, errors.MultipartInvariantViolationDefect())
            if truncated:
                root.defects.append(TooManyLines())
            return root
        except _Stop:  # too many parts: keep what was built (build_tree adds no TooManyLines)
            assert self.state.root is not None
            return self.state.root

    # -- FeedParser._parsegen, one branch a method ------------------------------------

    def _entity(self) -> None:
        self._new_message()
        headers: list[str] = []
        while line := self._input.readline():
            if not headerRE.match(line):
                if not NLCRE.match(line):
                    defect = errors.MissingHeaderBodySeparatorDefect()
                    self.policy.handle_defect(self._cur, defect)
                    self._input.unreadline(line)
                break
            headers.append(line)
        self._parse_headers(headers)
        if self._cur.get_content_type() == "message/delivery-status":
            self._delivery_status()
        elif self._cur.get_content_maintype() == "message":
            self._in_message += 1
            self._entity()
            self._pop_message()
            self._in_message -= 1
        elif self._cur.get_content_maintype() == "multipart":
            self._multipart()
        else:
            self._leaf()

    def _delivery_status(self) -> None:
        self._in_message += 1
        while True:
            self._input.push_eof_matcher(NLCRE.match)
            self._entity()
            self._pop_message()
            self._input.pop_eof_matcher()
            self._input.readline()
            line = self._input.readline()
            if line == "":
                break
            self._input.unreadline(line)
        self._in_message -= 1

    def _leaf(self) -> None:
        head, start, stop = self._input.read_until()
        if not head and not self._in_message and stop - start >= LAZY_BYTES:
            self._cur.keep_raw_body(RawBody(self.data, start, stop))
        else:
            self._cur.set_payload(head + self.data[start:stop].decode("ascii", "surrogateescape"))

    def _multipart(self) -> None:
        cur = self._cur
        boundary = cur.get_boundary()
        if boundary is None:
            self.policy.handle_defect(cur, errors.NoBoundaryInMultipartDefect())
            cur.set_payload(self._input.read_text())
            return
        if str(cur.get("content-transfer-encoding", "8bit")).lower() not in (
            "7bit",
            "8bit",
            "binary",
        ):
            self.policy.handle_defect(cur, errors.InvalidMultipartContentTransferEncodingDefect())
        own = _Boundary("--" + boundary, self.data, self._input.end)
        # The preamble: the lines before the first of this boundary's lines.
        preamble = self._input.read_text(own)
        line = self._input.readline()
        mo = own(line) if line else None
        if mo is None or mo.group("end"):
            # No opening boundary (or only the closing one): the preamble is the payload.
            self.policy.handle_defect(cur, errors.StartBoundaryNotFoundDefect())
            cur.set_payload(preamble)
            self._input.read_until()
            cur.epilogue = ""
            return
        if preamble:
            eolmo = NLCRE_eol.search(preamble)
            cur.preamble = preamble[: -len(eolmo.group(0))] if eolmo else preamble
        self._input.unreadline(line)
        close_boundary_seen, linesep = self._parts(own)
        if not close_boundary_seen:
            self.policy.handle_defect(cur, errors.CloseBoundaryNotFoundDefect())
            return
        # Everything up to the false end is the epilogue, less one leading line ending
        # (when the closing boundary had none of its own, the feed parser drops the
        # first line's ending).
        epilogue = self._input.read_text()
        if not linesep and (bolmo := NLCRE_bol.match(epilogue)):
            epilogue = epilogue[len(bolmo.group(0)) :]
        cur.epilogue = epilogue

    def _parts(self, own: _Boundary) -> tuple[bool, Any]:
        """The parts between boundary lines; (closing boundary seen, its line ending)."""
        while line := self._input.readline():
            mo = own(line)
            # After the preamble the feed parser only ever meets boundary lines here.
            assert mo is not None
            if mo.group("end"):
                return True, mo.group("linesep")
            while True:  # consecutive boundary lines delimit no part
                line = self._input.readline()
                if not own(line):
                    self._input.unreadline(line)
                    break
            self._input.push_eof_matcher(own)
            self._entity()
            self._strip_last_eol()
            self._input.pop_eof_matcher()
            self._pop_message()
            self._last = self._cur
        return False, None

    def _strip_last_eol(self) -> None:
        """The line ending before a boundary belongs to the boundary (RFC 2046)."""
        last = self._last
        if last.get_content_maintype() == "multipart":
            epilogue = last.epilogue
            if epilogue == "":
                last.epilogue = None
            elif epilogue is not None:
                mo = NLCRE_eol.search(epilogue)
                if mo:
                    last.epilogue = epilogue[: -len(mo.group(0))]
            return
        raw = last.raw_body() if isinstance(last, BoundedPart) else None
        if isinstance(raw, RawBody):
            last.keep_raw_body(raw.without_eol())
            return
        payload = last._payload
        if isinstance(payload, str):
            mo = NLCRE_eol.search(payload)
            if mo:
                last._payload = payload[: -len(mo.group(0))]


__all__ = ["build_tree_fast", "port_tree"]
