"""The .eml corpus through the real worker process: each quirk lands where it should.

One worker for the whole corpus (starting one per file would dominate the run time):
every file is injected the way SES delivers it (raw email in the raw bucket, SNS-wrapped
notification on the inbound queue), then the test reads only the queues, as apps would.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from mailflow.aws.clients import AwsClients
from mailflow.ops.inject import inject
from mailflow.settings import Settings
from tests.fixtures.eml.make_corpus import PDF_SMALL, PNG_1X1, corpus
from tests.integration.inbound.support import collect, wait_drained

pytestmark = pytest.mark.slow

Check = Callable[[dict[str, Any]], None]
CORPUS = corpus()


def text_has(fragment: str) -> Check:
    def check(m: dict[str, Any]) -> None:
        assert fragment in (m["email"]["body"].get("text") or "")

    return check


def fields(**expected: Any) -> Check:
    """Compare dotted paths: fields(**{"email.subject": "x"})."""

    def check(m: dict[str, Any]) -> None:
        for path, value in expected.items():
            node: Any = m
            for part in path.split("."):
                node = node[int(part)] if isinstance(node, list) else node.get(part)
            assert node == value, f"{path}: {node!r} != {value!r}"

    return check


def all_of(*checks: Check) -> Check:
    def check(m: dict[str, Any]) -> None:
        for c in checks:
            c(m)

    return check


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def attachments_are(*expected: tuple[str, str, str]) -> Check:
    """(filename, contentType, status) for each attachment, in order."""

    def check(m: dict[str, Any]) -> None:
        got = [(a["filename"], a["contentType"], a["status"]) for a in m["email"]["attachments"]]
        assert got == list(expected)
        for a in m["email"]["attachments"]:
            if a["status"] == "stored":
                assert a["s3Key"].startswith(f"inbound/{m['metadata']['routingKey']}/")
                assert a["presignedUrl"]
                assert a["presignedUrlExpiresAt"]
                assert len(a["checksum"]) == 64
            else:
                assert "s3Key" not in a
                assert "presignedUrl" not in a
                assert a["reason"]

    return check


def inline_image(cid: str, filename: str) -> Check:
    def check(m: dict[str, Any]) -> None:
        [image] = m["email"]["attachments"]
        assert (image["contentId"], image["disposition"], image["filename"]) == (
            cid,
            "inline",
            filename,
        )
        assert image["contentType"] == "image/png"
        assert image["status"] == "stored"
        assert fetch(image["presignedUrl"]) == PNG_1X1
        assert f'src="cid:{cid}"' in m["email"]["body"]["html"]

    return check


def xss_removed(m: dict[str, Any]) -> None:
    html = m["email"]["body"]["html"].lower()
    for bad in ("<script", "onclick", "onerror", "javascript:", "alert("):
        assert bad not in html
    assert 'href="https://example.net/ok"' in html


def duplicates_distinct(m: dict[str, Any]) -> None:
    names = [a["filename"] for a in m["email"]["attachments"]]
    keys = {a["s3Key"] for a in m["email"]["attachments"]}
    assert names == ["report.pdf", "report (2).pdf"]
    assert len(keys) == 2
    assert fetch(m["email"]["attachments"][0]["presignedUrl"]) == PDF_SMALL


def exe_blocked(m: dict[str, Any]) -> None:
    invoice, real = m["email"]["attachments"]
    assert invoice["status"] == "blocked"
    assert "executable" in invoice["reason"]
    assert invoice["detectedContentType"] == "application/x-msdownload"
    assert real["status"] == "stored"
    assert fetch(real["presignedUrl"]) == PDF_SMALL


@dataclass(frozen=True)
class Case:
    file: str
    recipients: tuple[str, ...]
    expect: dict[str, Check]  # queue label (app1, app2, default) -> check of its message


A1, A2 = "_app1@example.com", "_app2@example.com"
CASES = [
    Case("plain.eml", (A1,), {"app1": all_of(
        fields(**{"email.subject": "Plain text hello", "email.from.address": "alice@sender.test",
                  "email.from.name": "Alice Example", "email.messageId": "plain-1@sender.test",
                  "metadata.routingKey": "app1", "metadata.domain": "example.com"}),
        text_has("this is a plain text email."),
    )}),
    Case("alternative.eml", (A1,), {"app1": all_of(
        text_has("Plain version"), fields(**{"email.body.html": "<p>HTML <b>version</b></p>"}),
    )}),
    Case("attachments.eml", (A1,), {"app1": attachments_are(
        ("report.pdf", "application/pdf", "stored"), ("pixel.png", "image/png", "stored"),
    )}),
    Case("inline-image-named.eml", (A1,), {"app1": inline_image("logo@sender.test", "logo.png")}),
    Case("inline-image-unnamed.eml", (A1,),
         {"app1": inline_image("part1.abc@sender.test", "inline-1.png")}),
    Case("iso-8859-1.eml", (A1,), {"app1": all_of(
        text_has("Un café crème à Noël."),
        fields(**{"email.subject": "Café crème", "email.from.name": "François",
                  "metadata.charsetFallback": False}),
    )}),
    Case("windows-1252.eml", (A1,), {"app1": text_has("“Quoted” – costs €20.")}),
    Case("iso-2022-jp.eml", (A1,), {"app1": all_of(
        text_has("こんにちは、世界。"),
        fields(**{"email.subject": "こんにちは", "email.from.name": "山田"}),
    )}),
    Case("wrong-charset.eml", (A1,), {"app1": all_of(
        text_has("Grüße aus Köln"),
        fields(**{"metadata.charsetFallback": True,
                  "metadata.charsetFallbacks.0.used": "windows-1252"}),
    )}),
    Case("rfc2047-subject.eml", (A1,), {"app1": fields(**{
        "email.subject": "Prüfung der Rechnung €", "email.from.name": "Jörg Müller"})}),
    Case("rfc2231-filename.eml", (A1,), {"app1": attachments_are(
        ("Übersicht Quartal 2.pdf", "application/pdf", "stored"))}),
    Case("non-ascii-filename.eml", (A1,), {"app1": attachments_are(
        ("Résumé 履歴書.pdf", "application/pdf", "stored"))}),
    Case("duplicate-filenames.eml", (A1,), {"app1": duplicates_distinct}),
    Case("nested-rfc822.eml", (A1,), {"app1": all_of(
        attachments_are(("The original.eml", "message/rfc822", "stored")),
        text_has("Forwarding the message below."),
    )}),
    Case("bcc-only.eml", (A2,), {"app2": fields(**{
        "email.to.0.address": "someone-else@elsewhere.test",
        "metadata.recipients": ["_app2@example.com"], "metadata.routingKey": "app2"})}),
    Case("multiple-apps.eml", (A1, A2, "support@example.org"), {
        "app1": fields(**{"metadata.recipients": [A1, "support@example.org"]}),
        "app2": fields(**{"metadata.recipients": [A2]}),
    }),
    # The same headers naming both apps, but only app2 in the envelope: app1 gets nothing.
    Case("multiple-apps.eml", (A2,), {"app2": fields(**{"metadata.recipients": [A2]})}),
    Case("plus-tag.eml", ("_app1+ticket-42@example.com",), {"app1": fields(**{
        "metadata.mailboxHash": "ticket-42"})}),
    Case("alias.eml", ("support@example.org",), {"app1": fields(**{
        "metadata.routingKey": "app1", "metadata.domain": "example.org",
        "metadata.recipients": ["support@example.org"]})}),
    Case("unknown-app.eml", ("_nosuchapp@example.com",), {"default": fields(**{
        "metadata.routingKey": "_default"})}),
    Case("non-app-address.eml", ("info@example.com",), {"default": fields(**{
        "metadata.routingKey": "_default", "metadata.recipients": ["info@example.com"]})}),
    Case("foreign-domain.eml", ("_app1@not-our-domain.test", A2), {"app2": fields(**{
        "metadata.recipients": [A2]})}),
    Case("mixed-case-recipient.eml", ("_App2@EXAMPLE.COM",), {"app2": fields(**{
        "metadata.domain": "example.com"})}),
    Case("exe-as-pdf.eml", (A1,), {"app1": exe_blocked}),
    Case("html-xss.eml", (A1,), {"app1": xss_removed}),
    Case("threading-reply.eml", (A1,), {"app1": fields(**{
        "email.headers.in-reply-to": "order-2@example.com",
        "email.headers.references": ["order-1@example.com", "order-2@example.com"]})}),
    Case("no-message-id.eml", (A1,), {"app1": all_of(
        fields(**{"email.messageId": None}), text_has("no Message-ID"))}),
    Case("malformed-mime.eml", (A1,), {"app1": all_of(
        text_has("The body survives."),
        lambda m: _contains(m["metadata"]["parseDefects"], "CloseBoundaryNotFoundDefect"),
    )}),
    Case("auto-reply.eml", (A1,), {"app1": fields(**{
        "metadata.isAutoReply": True, "metadata.autoSubmitted": "auto-replied"})}),
]  # fmt: skip


def _contains(items: list[str], item: str) -> None:
    assert item in items, items


def test_every_corpus_file_has_a_case() -> None:
    covered = {case.file for case in CASES}
    assert set(CORPUS) - covered == {"virus.eml"}  # virus: test_inbound_guarantees


async def test_corpus_lands_where_it_should(
    make_settings: Callable[..., Settings], aws: AwsClients, worker_process: Any
) -> None:
    settings = make_settings(consumers=["inbound"])
    with worker_process(settings) as worker:
        worker.wait_ready()
        ids: dict[str, int] = {}
        for index, case in enumerate(CASES):
            ses_id = await inject(settings, aws, CORPUS[case.file], list(case.recipients))
            ids[ses_id] = index
        expected = sum(len(case.expect) for case in CASES)
        queues = {"app1": settings.app_queue("app1"), "app2": settings.app_queue("app2"),
                  "default": settings.default_queue, "dlq": settings.dlq}  # fmt: skip
        found = await collect(aws, queues, expect=expected, timeout=120)
        await wait_drained(aws, settings)
        found_late = await collect(aws, queues, expect=1, timeout=1)
        logs = worker.logs()
    assert not found.get("dlq"), (found["dlq"], logs)
    assert not found_late, (found_late, logs)
    assert "Traceback" not in logs
    seen: dict[tuple[int, str], dict[str, Any]] = {}
    for label in ("app1", "app2", "default"):
        for message in found.get(label, []):
            key = (ids[message["metadata"]["sesMessageId"]], label)
            assert key not in seen, f"two messages for {CASES[key[0]].file} in {label}"
            seen[key] = message
    failures: list[str] = []
    for index, case in enumerate(CASES):
        for label, check in case.expect.items():
            message = seen.pop((index, label), None)
            if message is None:
                failures.append(f"{case.file} -> {label}: no message")
                continue
            try:
                check(message)
            except AssertionError as exc:
                failures.append(f"{case.file} -> {label}: {exc}")
    failures += [f"{CASES[i].file} -> {label}: unexpected message" for i, label in seen]
    assert not failures, "\n".join(failures)
