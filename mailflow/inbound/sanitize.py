"""Making sender-controlled text safe to hand to apps (pure).

HTML goes through nh3 (ammonia): scripts and styles are removed with their content,
event-handler attributes and `javascript:` URLs are dropped, and `cid:` stays an allowed
URL scheme so inline images can still be resolved against `attachments[].contentId`.

Filenames keep their Unicode letters (an app shows them to people) but lose everything
that could steer a path or a terminal: separators, control and format characters,
leading dots, Windows-reserved characters, and excess length.
"""

from __future__ import annotations

import copy
import os.path
import re
import unicodedata
from collections.abc import Iterable

import nh3

_EXTRA_ATTRIBUTES = {
    "*": {"style", "title", "lang", "dir", "align", "valign", "width", "height"},
    "table": {"border", "cellpadding", "cellspacing", "bgcolor"},
    "td": {"bgcolor", "nowrap"},
    "th": {"bgcolor", "nowrap"},
    "tr": {"bgcolor"},
    "font": {"color", "face", "size"},
    "img": {"border"},
}
_STYLE_PROPERTIES = {
    "background-color",
    "border",
    "border-bottom",
    "border-collapse",
    "border-color",
    "border-left",
    "border-radius",
    "border-right",
    "border-style",
    "border-top",
    "border-width",
    "color",
    "display",
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "height",
    "letter-spacing",
    "line-height",
    "list-style-type",
    "margin",
    "margin-bottom",
    "margin-left",
    "margin-right",
    "margin-top",
    "max-width",
    "min-width",
    "padding",
    "padding-bottom",
    "padding-left",
    "padding-right",
    "padding-top",
    "text-align",
    "text-decoration",
    "text-transform",
    "vertical-align",
    "white-space",
    "width",
    "word-break",
}  # fmt: skip  (no url(), position, behavior or expression: nothing that loads or overlays)
_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}
_TAGS = set(nh3.ALLOWED_TAGS) | {"font", "tfoot"}


def _attributes() -> dict[str, set[str]]:
    merged = copy.deepcopy(nh3.ALLOWED_ATTRIBUTES)
    for tag, names in _EXTRA_ATTRIBUTES.items():
        merged.setdefault(tag, set()).update(names)
    return merged


_ATTRIBUTES = _attributes()


def sanitize_html(html: str) -> str:
    """Remove active content from an email's HTML body, keeping its layout and cid: images."""
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        filter_style_properties=_STYLE_PROPERTIES,
        clean_content_tags={"script", "style"},
        link_rel="noopener noreferrer",
    )


_RESERVED = re.compile(r'[<>:"|?*\\/]')
_SPACES = re.compile(r"\s+")
_MAX_NAME_BYTES = 200
_WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}
)


def sanitize_filename(name: str | None, fallback: str = "attachment") -> str:
    """A filename safe for any filesystem and terminal, Unicode letters kept."""
    text = unicodedata.normalize("NFC", name or "")
    text = re.split(r"[\\/]", text)[-1]  # a path's last segment: "../../x" -> "x"
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = _SPACES.sub(" ", _RESERVED.sub("_", text)).strip().lstrip(".").strip()
    stem, ext = os.path.splitext(text)
    if stem.lower() in _WINDOWS_DEVICES:
        text = f"_{text}"
    if not stem and not ext:
        text = fallback
    return _truncate(text)


def _truncate(name: str) -> str:
    if len(name.encode("utf-8")) <= _MAX_NAME_BYTES:
        return name
    stem, ext = os.path.splitext(name)
    if len(ext.encode("utf-8")) > 20:
        stem, ext = name, ""
    budget = _MAX_NAME_BYTES - len(ext.encode("utf-8"))
    cut = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return cut + ext


def dedupe_filenames(names: Iterable[str]) -> list[str]:
    """Keep every name distinct ('a.pdf', 'a (2).pdf', ...), case-insensitively."""
    seen: set[str] = set()
    result: list[str] = []
    for name in names:
        candidate, counter = name, 1
        stem, ext = os.path.splitext(name)
        while candidate.lower() in seen:
            counter += 1
            candidate = f"{stem} ({counter}){ext}"
        seen.add(candidate.lower())
        result.append(candidate)
    return result


def extension(name: str) -> str:
    """The lowercase extension without its dot ('' when none)."""
    return os.path.splitext(name)[1].lower().lstrip(".")
