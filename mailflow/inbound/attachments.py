"""Attachments of a received email: safe names, and whether each may be stored (pure).

Each is judged on its bytes as well as its labels. A sender controls the filename and
the declared Content-Type, so both are checked, and
so is the type detected from the first bytes with `filetype` (plus a few executable
signatures it does not know). An executable is blocked whatever it is called: the
original system passed a renamed `.exe` as `.txt`.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from fnmatch import fnmatch

import filetype

from mailflow.inbound.config import InboundSettings
from mailflow.inbound.parse import ParsedAttachment, ParsedEmail
from mailflow.inbound.sanitize import dedupe_filenames, extension, sanitize_filename

_HEAD_BYTES = 8192
# Signatures filetype lacks: Mach-O (32/64-bit, both byte orders, fat) and shebang scripts.
_EXTRA_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xfe\xed\xfa\xce", "application/x-mach-binary"),
    (b"\xfe\xed\xfa\xcf", "application/x-mach-binary"),
    (b"\xce\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (b"#!/", "application/x-sh"),
    (b"#! /", "application/x-sh"),
)
_EXECUTABLE_TYPES = frozenset(
    {
        "application/x-msdownload",
        "application/x-executable",
        "application/x-mach-binary",
        "application/x-sh",
    }
)


@dataclass(frozen=True)
class Verdict:
    """The outcome for one attachment: allowed, or blocked with a reason people can read."""

    allowed: bool
    detected_type: str | None
    reason: str | None = None


def detect_type(data: bytes) -> str | None:
    """The MIME type the bytes announce, or None when they announce nothing we know."""
    head = data[:_HEAD_BYTES]
    for signature, known in _EXTRA_SIGNATURES:
        if head.startswith(signature):
            return known
    kind = filetype.guess(head)
    mime = str(kind.mime) if kind is not None else None
    return None if mime == "application/octet-stream" else mime


def check(data: bytes, *, filename: str, declared_type: str, settings: InboundSettings) -> Verdict:
    """Apply size, executable, block-list and allow-list rules, in that order."""
    detected = detect_type(data)
    if len(data) > settings.max_attachment_bytes:
        return Verdict(
            False,
            detected,
            f"attachment is {len(data)} bytes; the limit is {settings.max_attachment_bytes}",
        )
    if detected in _EXECUTABLE_TYPES:
        return Verdict(False, detected, f"content is an executable ({detected})")
    ext = extension(filename)
    types = {declared_type.lower()} | ({detected} if detected else set())
    if ext and ext in settings.blocked_extensions:
        return Verdict(False, detected, f"extension .{ext} is blocked")
    blocked = sorted(t for t in types if _matches(t, settings.blocked_content_types))
    if blocked:
        return Verdict(False, detected, f"content type {blocked[0]} is blocked")
    if settings.allowed_extensions and ext not in settings.allowed_extensions:
        return Verdict(False, detected, f"extension .{ext or '(none)'} is not in the allow list")
    if settings.allowed_content_types:
        effective = detected or declared_type.lower()
        if not _matches(effective, settings.allowed_content_types):
            return Verdict(False, detected, f"content type {effective} is not in the allow list")
    return Verdict(True, detected)


def _matches(mime: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch(mime, pattern) for pattern in patterns)


def _fallback_name(attachment: ParsedAttachment, index: int) -> str:
    ext = mimetypes.guess_extension(attachment.content_type) or ".bin"
    stem = "inline" if attachment.disposition == "inline" else "attachment"
    return f"{stem}-{index + 1}{ext}"


def attachment_names(parsed: ParsedEmail) -> list[str]:
    """Safe, distinct filenames for the email's attachments, in order."""
    names = [
        sanitize_filename(att.filename, fallback=_fallback_name(att, i))
        for i, att in enumerate(parsed.attachments)
    ]
    return dedupe_filenames(names)


@dataclass(frozen=True)
class Inspected:
    """One attachment decoded, hashed and judged."""

    data: bytes
    checksum: str
    verdict: Verdict


def inspect(part: ParsedAttachment, filename: str, settings: InboundSettings) -> Inspected:
    """Decode, hash and judge one attachment (CPU-bound: callers run it in a thread)."""
    data = part.data()
    verdict = check(data, filename=filename, declared_type=part.content_type, settings=settings)
    return Inspected(data, hashlib.sha256(data).hexdigest(), verdict)
