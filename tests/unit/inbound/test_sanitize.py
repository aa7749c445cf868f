"""HTML sanitization and filename safety."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from mailflow.inbound.sanitize import dedupe_filenames, sanitize_filename, sanitize_html


def test_scripts_handlers_and_javascript_urls_are_removed() -> None:
    html = (
        '<p onclick="steal()">Hello</p><script>alert("x")</script>'
        '<a href="javascript:alert(1)">click</a><img src="x" onerror="alert(2)">'
        '<a href="JaVaScRiPt:alert(3)">2</a><iframe src="https://evil.test"></iframe>'
        "<style>body{background:url(https://track.test/p.gif)}</style>"
        '<a href="https://example.net/ok">safe link</a>'
    )
    clean = sanitize_html(html)
    lowered = clean.lower()
    for forbidden in ("<script", "onclick", "onerror", "javascript:", "<iframe", "<style", "alert"):
        assert forbidden not in lowered
    assert '<a href="https://example.net/ok" rel="noopener noreferrer">safe link</a>' in clean
    assert "Hello" in clean


def test_cid_images_and_layout_survive() -> None:
    html = (
        '<table border="0" cellpadding="4"><tr><td bgcolor="#eee" style="color: red;'
        ' position: fixed">x</td></tr></table><img src="cid:logo@sender.test" alt="logo">'
    )
    clean = sanitize_html(html)
    assert '<img src="cid:logo@sender.test" alt="logo">' in clean
    assert 'cellpadding="4"' in clean
    assert 'bgcolor="#eee"' in clean
    assert "color:red" in clean.replace(" ", "")
    assert "position" not in clean


def test_filenames_keep_unicode_and_lose_paths_and_controls() -> None:
    assert sanitize_filename("Résumé 履歴書.pdf") == "Résumé 履歴書.pdf"
    assert sanitize_filename("../../etc/passwd") == "passwd"
    assert sanitize_filename("C:\\Users\\x\\evil.exe") == "evil.exe"
    assert sanitize_filename("a\x00b\x1b[31mc.txt") == "ab[31mc.txt"
    assert sanitize_filename("invoice\u202efdp.exe") == "invoicefdp.exe"  # RTL override gone
    assert sanitize_filename('a<b>:"c"|?*.txt') == "a_b___c____.txt"
    assert sanitize_filename("...hidden") == "hidden"
    assert sanitize_filename("CON.txt") == "_CON.txt"
    assert sanitize_filename("", fallback="inline-1.png") == "inline-1.png"
    assert sanitize_filename(None) == "attachment"
    long = sanitize_filename("é" * 300 + ".pdf")
    assert long.endswith(".pdf")
    assert len(long.encode()) <= 200


def test_duplicate_names_stay_distinct() -> None:
    assert dedupe_filenames(["report.pdf", "report.pdf", "Report.PDF", "report (2).pdf"]) == [
        "report.pdf",
        "report (2).pdf",
        "Report (3).PDF",
        "report (2) (2).pdf",
    ]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_sanitized_filenames_are_always_safe(name: str) -> None:
    clean = sanitize_filename(name)
    assert clean
    assert "/" not in clean
    assert "\\" not in clean
    assert not clean.startswith(".")
    assert all(unicodedata.category(ch)[0] != "C" for ch in clean)
    assert len(clean.encode("utf-8")) <= 200


@given(st.lists(st.sampled_from(["a.pdf", "A.pdf", "b", "a (2).pdf"]), max_size=12))
def test_dedupe_is_injective(names: list[str]) -> None:
    result = dedupe_filenames(names)
    assert len({n.lower() for n in result}) == len(names)
