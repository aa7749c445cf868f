"""The new text of a reply: quoted history and signature removed (pure).

Apps that turn replies into ticket comments or chat messages want what the person just
wrote, not the thread below it. Mail clients mark the history only by convention, so
this module knows the conventions of the common clients, in clear patterns per language:

- an attribution line ("On <date>, <name> wrote:", "Am ... schrieb ...:",
  "Le ... a écrit :", "El ... escribió:", "... 于<date>写道：", "2024年6月3日(月) 10:12
  <name>:", ...), possibly quoted (Apple Mail) and wrapped over up to three lines
  (Gmail), followed by quoted (`>`) text or nothing;
- an Outlook-style header block: `From:` and at least one more header (`Sent:`, `To:`,
  `Subject:`, ..., and their German, French, Spanish, Chinese, Japanese forms), with
  the separator line above it ("-----Original Message-----", underscores);
- a trailing block of `>`-quoted lines with no attribution at all.

Everything from the first of these on is history. Then the signature goes: from the
last RFC 3676 delimiter (`-- `) on, or a mobile client's tagline ("Sent from my
iPhone", "Von meinem iPhone gesendet", "发自我的iPhone", ...) that ends the text. A
closing such as "Best regards, Jane" stays: it is what the person wrote.

Every rule needs a whole line (or a few wrapped lines) to match, so prose that merely
mentions "From:" or quotes one line in the middle is kept. Lines longer than a header
can be are never tested, so hostile input costs linear time.

Why our own module: of the maintained libraries, `quotequail` knows no Chinese or
Japanese headers and keeps signatures, and `mail-parser-reply` misses Gmail's wrapped
attributions and removes closings with its signature rules (docs/inbound.md has the
comparison on tests/fixtures/replies).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Wrapped attribution lines are joined; longer candidates are no attribution.
_MAX_ATTRIBUTION = 400
_MAX_WRAP = 3
# Header lines of an Outlook-style block searched after its `From:` line.
_HEADER_WINDOW = 5

_COLONS = (":", "：")
_QUOTE_MARKS = re.compile(r"^(?:\s*>)+ ?")

_ATTRIBUTION = re.compile(
    "|".join(
        (
            r"On\s.+\swrote\s?:",  # en: Gmail, Apple Mail, Thunderbird
            r"Am\s.+\sschrieb\s.*:",  # de
            r"Le\s.+\sa\s+écrit\s?:",  # fr (Gmail puts a no-break space before the colon)
            r"El\s.+\sescribió\s?:",  # es
            r"Em\s.+\sescreveu\s?:",  # pt
            r"Il\s.+\sha\s+scritto\s?:",  # it
            r"Op\s.+\sschreef\s.*:",  # nl
            r".*\d{4}\s*年.*写道\s?[:：]",  # zh: Gmail "X 于...写道：", Apple "在 ..."
            r"\d{4}年\d{1,2}月\d{1,2}日\s*[(（].[)）]\s*\d{1,2}:\d{2}\s.+[:：]",  # ja: Gmail
            r".*\d{4}[/年].*(?:のメール|書きました)\s?[:：]",  # ja: Apple Mail, Outlook
        )
    ),
    re.IGNORECASE,
)

# `From:` and the other headers of a quoted email, per language (Outlook writes a space
# before the colon in French).
_FROM_LABEL = re.compile(r"(?:From|Von|De|Van|Da|发件人|寄件者|差出人)\s?[:：]\s*\S", re.IGNORECASE)
_OTHER_LABEL = re.compile(
    r"(?:Sent|Date|To|Subject|Cc|Gesendet|Datum|An|Betreff|Envoyé|À|Objet|Enviado(?:\sel)?"
    r"|Fecha|Para|Asunto|Verzonden|Aan|Onderwerp|Inviato|Oggetto|发送时间|日期|收件人|主题"
    r"|送信日時|日付|宛先|件名)\s?[:：]",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(
    r"-{2,}\s*(?:Original Message|Original message|Ursprüngliche Nachricht|Message d'origine"
    r"|Mensaje original|Messaggio originale|Oorspronkelijk bericht|原始邮件|元のメッセージ)"
    r"\s*-{2,}|_{10,}|-{10,}",
    re.IGNORECASE,
)

_SIGNATURE_DELIMITER = "--"
_TAGLINE = re.compile(
    "|".join(
        (
            r"Sent from (?:my\s.+|Mail for Windows.*|Outlook.*|Yahoo Mail.*|Proton\s?Mail.*)",
            r"Get Outlook for .+",
            r"Gesendet von (?:meinem\s.+|Outlook.*|Mail für Windows.*)",
            r"Von meinem .+ gesendet",
            r"Envoyé (?:de|depuis) (?:mon\s.+|Outlook.*|l'application.*)",
            r"Enviado (?:desde|do) (?:mi\s.+|meu\s.+|Outlook.*|Correo.*)",
            r"Inviato da .+",
            r"Verzonden (?:met|vanaf) .+",
            r"发自我的.+",
            r"从我的.+发送",
            r"\S{1,30}から送信",
        )
    ),
    re.IGNORECASE,
)
_MAX_TAGLINE = 80


def stripped_text(text: str | None, html: str | None) -> str | None:
    """The new text of the body: from `text`, else from (sanitized) `html`; None if neither."""
    if text is not None:
        return strip_reply(text)
    if html is not None:
        return strip_reply(html_to_text(html))
    return None


def strip_reply(text: str) -> str:
    """`text` without quoted history and signature, surrounding blank lines trimmed."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    new = _without_signature(lines[: _history_start(lines)])
    return "\n".join(new).strip("\n")


def _history_start(lines: list[str]) -> int:
    """Index of the first line of quoted history; len(lines) when there is none."""
    plain = [_QUOTE_MARKS.sub("", line).strip() for line in lines]
    quoted = [line.lstrip().startswith(">") for line in lines]
    for index, line in enumerate(plain):
        if line and (_is_attribution(plain, quoted, index) or _is_header_block(plain, index)):
            return _with_separator(plain, index)
    return _trailing_quote_start(lines)


def _is_attribution(plain: list[str], quoted: list[bool], index: int) -> bool:
    """An attribution line, alone or wrapped, followed by quoted text or by nothing."""
    joined = ""
    for end in range(index, min(index + _MAX_WRAP, len(plain))):
        if not plain[end]:
            return False
        joined = f"{joined} {plain[end]}" if joined else plain[end]
        if len(joined) > _MAX_ATTRIBUTION:
            return False
        if joined.endswith(_COLONS) and _ATTRIBUTION.fullmatch(joined):
            following = next((i for i in range(end + 1, len(plain)) if plain[i]), None)
            return following is None or quoted[following]
    return False


def _is_header_block(plain: list[str], index: int) -> bool:
    """`From: x` with at least one more header label in the lines right below it."""
    line = plain[index]
    if len(line) > _MAX_ATTRIBUTION or not _FROM_LABEL.match(line):
        return False
    window = plain[index + 1 : index + 1 + _HEADER_WINDOW]
    return any(_OTHER_LABEL.match(below) for below in window if below)


def _with_separator(plain: list[str], index: int) -> int:
    """Move the cut up over blank lines to the separator line above, if there is one."""
    above = index - 1
    while above >= 0 and not plain[above]:
        above -= 1
    if above >= 0 and _SEPARATOR.fullmatch(plain[above]):
        return above
    return index


def _trailing_quote_start(lines: list[str]) -> int:
    """Where a `>`-quoted block that ends the text begins (len(lines) when none does)."""
    start = len(lines)
    for index in range(len(lines) - 1, -1, -1):
        if not lines[index]:
            continue
        if not lines[index].lstrip().startswith(">"):
            break
        start = index
    return start


def _without_signature(lines: list[str]) -> list[str]:
    """Drop the signature: after the last `-- ` delimiter, or a closing mobile tagline."""
    for index in range(len(lines) - 1, -1, -1):
        if lines[index] == _SIGNATURE_DELIMITER:
            return lines[:index]
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if filled:
        last = lines[filled[-1]].strip()
        if len(last) <= _MAX_TAGLINE and _TAGLINE.fullmatch(last):
            return lines[: filled[-1]]
    return lines


# -- HTML to text -------------------------------------------------------------------------

_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "figure",
        "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p",
        "pre", "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
_HIDDEN = frozenset({"head", "title", "script", "style", "template"})
_SPACE = re.compile(r"\s+")


class _TextWriter(HTMLParser):
    """Readable text of HTML: blocks and `<br>` break lines, `<blockquote>` quotes with `>`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current = ""
        self.depth = 0
        self.line_depth = 0
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag == "br":
            self._flush(keep_empty=True)
        elif tag in _BLOCKS:
            self._flush()
            self.depth += tag == "blockquote"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HIDDEN:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag == "p":
            self._flush(keep_empty=True)
        elif tag in _BLOCKS:
            self._flush()
            self.depth = max(0, self.depth - (tag == "blockquote"))

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        text = _SPACE.sub(" ", data.replace("\xa0", " "))
        if not self.current.strip():
            self.line_depth = self.depth
            text = text.lstrip()
        self.current += text

    def _flush(self, *, keep_empty: bool = False) -> None:
        line = self.current.strip()
        if line or keep_empty:
            depth = self.line_depth if line else self.depth
            self.lines.append(("> " * depth + line).rstrip())
        self.current = ""

    def text(self) -> str:
        self._flush()
        collapsed: list[str] = []
        for line in self.lines:
            if line or (collapsed and collapsed[-1]):
                collapsed.append(line)
        return "\n".join(collapsed).strip("\n")


def html_to_text(html: str) -> str:
    """The text a reader sees in `html`, lines as the blocks lay them out."""
    writer = _TextWriter()
    writer.feed(html)
    writer.close()
    return writer.text()
