"""The standard library's MIME parser, bounded: what a hostile email can make it do.

Every byte is hostile, and the standard library's parser was not written for that: its
header registry recurses (5,000 `(` in a `From` is a `RecursionError`), raises on odd
syntax (`To: g:;;`), and is quadratic on long structured values (64 KB of `(a)` takes
over a minute); its MIME parser recurses once per nesting level and spends about 0.2 ms
per part. So the parser runs under limits (below), and each breach is a named defect rather
than an exception (`mailflow.inbound.parse` reads the result). The defects of our own making:

- `HeaderParseError:<Name>`: the header registry failed on that header; its raw text
  was read instead (a forgiving, linear reader for addresses);
- `HeaderTooComplex:<Name>`: longer than `REGISTRY_MAX_CHARS`, or over the email's
  budget for the registry (`REGISTRY_BUDGET`); read as raw text;
- `HeaderTruncated`: a value was longer than `MAX_HEADER_CHARS` (MIME headers:
  `MAX_MIME_HEADER_CHARS`) and was cut there;
- `TooManyHeaders`: header fields beyond `MAX_HEADERS` in one email were dropped;
- `MimeNestingTooDeep`: parts nested deeper than `MAX_DEPTH` were not parsed;
- `TooManyParts`: parsing stopped after `MAX_PARTS` parts (what came before is kept);
- `TooManyLines`: parsing stopped after about `MAX_LINES` lines (the feed parser's cost
  per line grows with the nesting depth);
- `ParserError:<Exception>`: the standard parser raised; what it had built is kept.

When not even that leaves anything to read, parsing raises `PolicyRejected` with code
`unparseable_email`: a permanent, recorded failure, never a retry loop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.errors import MessageDefect
from email.feedparser import BytesFeedParser
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage, Message
from email.policy import EmailPolicy
from typing import Any

from mailflow.errors import PolicyRejected
from mailflow.inbound.body import FileBody, LazyBody, RawBody

# -- limits: what a hostile email can make the parser do ----------------------------------
# Real mail stays far below each of them; the costs were measured on CPython 3.11.

MAX_DEPTH = 16  # MIME nesting: the parser recurses, and tests each line, per level
MAX_PARTS = 1000  # MIME parts, containers included; about 0.2 ms of parsing each
MAX_LINES = 1_000_000  # about 1 µs each, and 0.3 µs more per enclosing multipart
MAX_HEADERS = 10_000  # header fields in the whole email
MAX_HEADER_CHARS = 64 * 1024  # one header value (a To with a thousand names fits)
MAX_MIME_HEADER_CHARS = 8 * 1024  # one Content-* value (the stdlib re-parses them often)
REGISTRY_MAX_CHARS = 2 * 1024  # longer values skip the header registry (quadratic)
# The registry's cost grows with the square of a value's length (worst case measured:
# 4 KB in 0.4 s, 16 KB in 5 s): each parse is charged max(len, 64)**2 against this
# budget, about 1.5 s of the worst input per email; normal mail uses a few percent.
REGISTRY_BUDGET = 8 * REGISTRY_MAX_CHARS**2
MAX_DEFECTS = 32  # distinct defect names kept
CHUNK = 64 * 1024
MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
LINESEP = re.compile(r"\n|\r")
_PARAM_END = re.compile(r'[\s()"]')


class TooManyParts(MessageDefect):
    """Parsing stopped after MAX_PARTS MIME parts."""


class MimeNestingTooDeep(MessageDefect):
    """Parts nested deeper than MAX_DEPTH were not read (each is one opaque leaf)."""


class TooManyHeaders(MessageDefect):
    """Header fields beyond MAX_HEADERS were dropped."""


class HeaderTruncated(MessageDefect):
    """A header value was cut at MAX_HEADER_CHARS (MIME headers: MAX_MIME_HEADER_CHARS)."""


class TooManyLines(MessageDefect):
    """Parsing stopped after about MAX_LINES lines; the part it stopped in is incomplete."""


class ParserFailed(MessageDefect):
    """The standard parser raised; what it had built is kept. Named after the exception."""

    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self.mailflow_name = f"ParserError:{type(exc).__name__}"


class _Stop(Exception):
    """Raised inside the parser to end parsing early (too many parts)."""


class Defects:
    """Defect names in first-seen order, each once, at most MAX_DEFECTS of them."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, name: str) -> None:
        if name not in self.names and len(self.names) < MAX_DEFECTS:
            self.names.append(name)


@dataclass
class ParseState:
    """What one email's parse has spent so far; shared by its policy and all its parts."""

    root: Message | None = None
    parts: int = 0
    headers: int = 0
    budget: int = REGISTRY_BUDGET
    # Each (name, value) is parsed once: the stdlib asks for a part's Content-Type a
    # dozen times while parsing and reading it (0.15 ms each).
    fetched: dict[tuple[str, str], Any] = field(default_factory=dict)


class Unparsed(str):
    """A header's raw (unfolded) text, handed out where the registry was not used."""

    reason: str

    def __new__(cls, text: str, reason: str) -> Unparsed:
        self = super().__new__(cls, text)
        self.reason = reason
        return self


class BoundedPart(EmailMessage):
    """A MIME part that keeps a hostile structure bounded while the parser builds it.

    The feed parser creates every part through the policy's message factory and hangs
    each on its parent with `attach()`, before reading its headers; `set_raw()` is how
    it stores each header. Those three places are enough to count parts and headers
    and to know each part's depth. A part too deep answers `application/octet-stream`
    for its type, so the parser keeps the rest of it as one leaf instead of recursing.
    """

    def __init__(self, policy: Any = None) -> None:
        self._mf_payload: Any = None
        super().__init__(policy)
        self._mf_depth = 0
        self._mf_state: ParseState | None = getattr(policy, "state", None)
        if self._mf_state is not None and self._mf_state.root is None:
            self._mf_state.root = self

    # The payload as the standard library sees it: a large body found by the fast parser
    # is a range of the raw email here, made on each read and never kept
    # (see mailflow.inbound.body).
    @property
    def _payload(self) -> Any:
        payload = self._mf_payload
        return payload.text() if isinstance(payload, RawBody | FileBody) else payload

    @_payload.setter
    def _payload(self, value: Any) -> None:
        self._mf_payload = value

    def is_multipart(self) -> bool:
        return isinstance(self._mf_payload, list)

    def keep_raw_body(self, body: LazyBody) -> None:
        """Hold the body as a range of the raw email rather than as text."""
        self._mf_payload = body

    def raw_body(self) -> LazyBody | None:
        """The body as a range of the raw email, when it is kept that way."""
        payload = self._mf_payload
        return payload if isinstance(payload, RawBody | FileBody) else None

    def attach(self, payload: Any) -> None:
        if isinstance(payload, BoundedPart):
            payload._mf_depth = self._mf_depth + 1
            if payload._mf_depth == MAX_DEPTH + 1:
                payload.defects.append(MimeNestingTooDeep())
        state = self._mf_state
        if state is not None:
            state.parts += 1
            if state.parts > MAX_PARTS:
                if state.root is not None:
                    state.root.defects.append(TooManyParts())
                raise _Stop
        super().attach(payload)

    def get_content_type(self) -> str:
        if self._mf_depth > MAX_DEPTH:
            return "application/octet-stream"
        return super().get_content_type()

    def get_param(
        self, param: str, failobj: Any = None, header: str = "content-type", unquote: bool = True
    ) -> Any:
        """A parameter as the header registry decoded it (RFC 2231 and 2047 included).

        The inherited method re-splits the header text on every call, quadratically in
        its quoted semicolons (8 KB of them took half a second, per call); the registry
        has parsed the parameters once already. Raw text gets a plain linear split.
        Values are always unquoted, and decoded (never an RFC 2231 tuple).
        """
        value = self.get(header)
        if value is None:
            return failobj
        params = value.params if hasattr(value, "params") else _split_params(str(value))
        return params.get(param.lower(), failobj)

    def set_raw(self, name: str, value: Any) -> None:
        state = self._mf_state
        if state is not None:
            state.headers += 1
            if state.headers > MAX_HEADERS:
                if state.headers == MAX_HEADERS + 1 and state.root is not None:
                    state.root.defects.append(TooManyHeaders())
                return
            limit = (
                MAX_MIME_HEADER_CHARS if name.lower().startswith("content-") else MAX_HEADER_CHARS
            )
            if isinstance(value, str) and len(value) > limit:
                value = value[:limit]
                self.defects.append(HeaderTruncated())
        super().set_raw(name, value)


class _Registry(HeaderRegistry):
    """The header registry, with each header class made once instead of on every parse.

    `HeaderRegistry[name]` builds a new class each time (`type(...)`): a fifth of the
    time to parse a small email. The class depends only on the registered kind of the
    name, so the cache is keyed by that kind (a few dozen): a sender inventing header
    names cannot make it grow.
    """

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[type, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        kind = self.registry.get(name.lower(), self.default_class)
        cls = self._classes.get(kind)
        if cls is None:
            cls = self._classes[kind] = super().__getitem__(name)
        return cls


_REGISTRY = _Registry()


class SafePolicy(EmailPolicy):
    """`policy.default`, except that reading a header never raises and never takes long.

    A value the registry cannot parse, or may not (too long, or the email's budget
    spent), comes back as `Unparsed` raw text: the standard library's own MIME code
    treats it as a plain string (as `compat32` does), and our accessors record why.
    """

    state: ParseState

    def __init__(self, state: ParseState | None = None, **kw: Any) -> None:
        kw.setdefault("header_factory", _REGISTRY)
        super().__init__(message_factory=BoundedPart, **kw)
        object.__setattr__(self, "state", state or ParseState())

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name"):
            return value
        text = "".join(LINESEP.split(value))
        key = (name.lower(), text)
        fetched = self.state.fetched.get(key)
        if fetched is None:
            fetched = self.state.fetched[key] = self._parse_header(name, text)
        return fetched

    def _parse_header(self, name: str, text: str) -> Any:
        cost = max(len(text), 64) ** 2
        if len(text) > REGISTRY_MAX_CHARS or cost > self.state.budget:
            return Unparsed(text, "HeaderTooComplex")
        self.state.budget -= cost
        try:
            return self.header_factory(name, text)
        except Exception:  # RecursionError, HeaderParseError, AttributeError, ...
            return Unparsed(text, "HeaderParseError")


def _split_params(text: str) -> dict[str, str]:
    """`a=1 (note); b="2"` -> {"a": "1", "b": "2"}, for values the registry did not parse.

    Linear and forgiving: a quoted value ends at the next quote, any other at the first
    space, parenthesis or quote (a `;` inside quotes is not seen as one: good enough
    for a header the registry refused).
    """
    params: dict[str, str] = {}
    for item in text.split(";")[1:]:
        name, sep, value = item.partition("=")
        value = value.strip()
        if value.startswith('"'):
            value = value[1:].partition('"')[0]
        else:
            value = _PARAM_END.split(value, maxsplit=1)[0]
        if sep:
            params.setdefault(name.strip().lower(), value)
    return params


def build_tree(chunks: Iterable[bytes]) -> Message:
    """The message tree, built by the feed parser under the limits above.

    The reference: `mailflow.inbound.fastmime` builds the same tree faster and falls
    back on this one (`chunks` are CHUNK-sized pieces of the email, in order).
    """
    state = ParseState()
    parser = BytesFeedParser(policy=SafePolicy(state))
    lines = 0
    try:
        for chunk in chunks:
            parser.feed(chunk)
            lines += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
            if lines > MAX_LINES:
                break
        message = parser.close()
        if lines > MAX_LINES:
            message.defects.append(TooManyLines())
        return message
    except _Stop:  # too many parts: keep what was built
        pass
    except MemoryError:
        raise
    except Exception as exc:  # the stdlib parser's own bug on hostile input
        if state.root is None:
            raise unparseable(exc) from exc
        state.root.defects.append(ParserFailed(exc))
    assert state.root is not None  # _Stop comes from attach(), after the root exists
    return state.root


def unparseable(exc: Exception) -> PolicyRejected:
    return PolicyRejected(
        f"the email could not be parsed ({type(exc).__name__})", code="unparseable_email"
    )
