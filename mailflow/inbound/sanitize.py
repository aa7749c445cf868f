"""Making sender-controlled text safe to hand to apps (pure).

HTML goes through nh3 (ammonia): only the tags and attributes listed here survive,
`<script>` and `<style>` go with their content, comments go, every URL attribute must
be `http`, `https`, `mailto`, `tel`, `cid` or relative (`cid:` so inline images can still
be resolved against `attachments[].contentId`), and links get `rel="noopener noreferrer"`.

Inline `style` attributes are kept, filtered, because email layout lives in them (most
clients ignore `<style>`): nh3 alone keeps an allowed *property* whatever its *value*
(`width: expression(...)`, `font-family: url(...)`), and it decodes CSS escapes as it
re-serializes (`\\75 rl(x)` comes out as `url("x")`). So a declaration survives only
when its property is in `_STYLE_PROPERTIES` and its value, before any CSS decoding, is
made of letters, digits, spaces and `# % . , ' " ! + - / ( )`, calls no function but
`rgb`, `rgba`, `hsl`, `hsla` and `calc`, balances its quotes and parentheses, and, after
Unicode compatibility folding (fullwidth letters), names none of `expression`, `url(`,
`behavior`, `binding`, `javascript`, `vbscript`, `@import`. No backslash (so no CSS
escape), no comment, no `:`, `;`, `@`, `&`, `<`, `>`, `{`, `}`, `*` can reach a value.

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
_STYLE_FUNCTIONS = frozenset({"rgb", "rgba", "hsl", "hsla", "calc"})
_STYLE_VALUE = re.compile(r"[\w \t\r\n#%.,'\"!+\-/()]*")
_STYLE_FUNCTION = re.compile(r"([a-z-]*)\s*\(")
_STYLE_FORBIDDEN = (
    "expression", "url(", "behavior", "binding", "javascript", "vbscript", "@import",
)  # fmt: skip
_MAX_STYLE_VALUE = 256
_SURROGATES = re.compile("[\ud800-\udfff]")
_URL_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
_URL_NOISE = re.compile(r"[\x00-\x20\x7f-\x9f]+")  # what browsers skip in a URL's scheme
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
        _SURROGATES.sub("\ufffd", html),  # nh3 (Rust) refuses lone surrogates outright
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        attribute_filter=_filter_attribute,
        url_schemes=_URL_SCHEMES,
        filter_style_properties=_STYLE_PROPERTIES,
        clean_content_tags={"script", "style"},
        link_rel="noopener noreferrer",
    )


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    """nh3's hook, called with each kept attribute's decoded value (None drops it)."""
    if attribute == "style":
        return safe_style(value)
    if attribute == "cite":  # a URL that nh3 does not check (href and src it does)
        scheme = _URL_SCHEME.match(_URL_NOISE.sub("", value).lower())
        return value if scheme is None or scheme.group(1) in _URL_SCHEMES else None
    return value


def safe_style(style: str) -> str | None:
    """The declarations of a `style` attribute that are safe to keep, or None if none is.

    Each declaration is judged on its text as HTML parsing leaves it (entities decoded)
    but before any CSS decoding, so nothing a CSS escape or comment hides can pass, and
    no escape or comment is let through (the module docstring has the rules).
    """
    kept: list[str] = []
    for declaration in style.split(";"):
        name, colon, value = declaration.partition(":")
        name, value = name.strip().lower(), value.strip()
        if colon and name in _STYLE_PROPERTIES and _safe_style_value(value):
            kept.append(f"{name}: {value}")
    return "; ".join(kept) or None


def _safe_style_value(value: str) -> bool:
    if not value or len(value) > _MAX_STYLE_VALUE or not _STYLE_VALUE.fullmatch(value):
        return False
    folded = unicodedata.normalize("NFKC", value).lower()  # fullwidth ｅ -> e, （ -> (
    if not _STYLE_VALUE.fullmatch(folded):
        return False
    compact = "".join(folded.split())
    if any(word in compact for word in _STYLE_FORBIDDEN):
        return False
    if any(name not in _STYLE_FUNCTIONS for name in _STYLE_FUNCTION.findall(folded)):
        return False
    return _balanced(folded) and folded.count('"') % 2 == 0 and folded.count("'") % 2 == 0


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += 1 if ch == "(" else -1 if ch == ")" else 0
        if depth < 0:
            return False
    return depth == 0


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
