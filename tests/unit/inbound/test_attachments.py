"""Attachment checks run on the bytes, not only the labels."""

from __future__ import annotations

from typing import Any

from mailflow.inbound.attachments import check, detect_type
from tests.fixtures.eml.make_corpus import EXE_HEAD, PDF_SMALL, PNG_1X1

ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 60
MACHO = b"\xcf\xfa\xed\xfe" + b"\x00" * 60


def test_detection() -> None:
    assert detect_type(PDF_SMALL) == "application/pdf"
    assert detect_type(PNG_1X1) == "image/png"
    assert detect_type(EXE_HEAD) == "application/x-msdownload"
    assert detect_type(ELF) == "application/x-executable"
    assert detect_type(MACHO) == "application/x-mach-binary"
    assert detect_type(b"#!/bin/sh\nrm -rf /") == "application/x-sh"
    assert detect_type(b"just text") is None


def test_executables_are_blocked_whatever_they_are_called(pure_settings: Any) -> None:
    settings = pure_settings().inbound
    for data in (EXE_HEAD, ELF, MACHO):
        verdict = check(
            data, filename="invoice.pdf", declared_type="application/pdf", settings=settings
        )
        assert not verdict.allowed
        assert verdict.reason is not None
        assert "executable" in verdict.reason


def test_real_documents_pass(pure_settings: Any) -> None:
    settings = pure_settings().inbound
    assert check(
        PDF_SMALL, filename="a.pdf", declared_type="application/pdf", settings=settings
    ).allowed
    assert check(
        PNG_1X1, filename="inline-1.png", declared_type="image/png", settings=settings
    ).allowed


def test_blocked_extensions_and_types(pure_settings: Any) -> None:
    settings = pure_settings().inbound
    script = check(
        b"WScript.Echo 1", filename="run.VBS", declared_type="text/plain", settings=settings
    )
    assert (script.allowed, script.reason) == (False, "extension .vbs is blocked")
    jar = check(
        b"PK\x03\x04", filename="x.zip", declared_type="application/java-archive", settings=settings
    )
    assert not jar.allowed
    assert "application/java-archive" in str(jar.reason)


def test_allow_lists_when_configured(pure_settings: Any) -> None:
    settings = pure_settings(allowed_content_types="image/*,application/pdf").inbound
    assert check(PNG_1X1, filename="a.png", declared_type="image/png", settings=settings).allowed
    zipped = check(
        b"PK\x03\x04" + b"\x00" * 30,
        filename="a.zip",
        declared_type="application/zip",
        settings=settings,
    )
    assert not zipped.allowed
    assert "not in the allow list" in str(zipped.reason)
    by_ext = pure_settings(allowed_extensions=["pdf"]).inbound
    assert not check(PNG_1X1, filename="a.png", declared_type="image/png", settings=by_ext).allowed
    assert check(
        PDF_SMALL, filename="a.PDF", declared_type="application/pdf", settings=by_ext
    ).allowed


def test_size_limit(pure_settings: Any) -> None:
    settings = pure_settings(max_attachment_bytes=10).inbound
    verdict = check(PDF_SMALL, filename="a.pdf", declared_type="application/pdf", settings=settings)
    assert not verdict.allowed
    assert "limit is 10" in str(verdict.reason)
