"""Every JSON example in the README and docs is the contract the worker keeps.

Each fenced ```json block (a block may hold several documents, one after another) and
each file in docs/examples/ is extracted and sorted by what it is. An outbound message
must be valid against the published input schema *and* accepted by the worker's own
validation; everything mailflow writes (inbound messages, status events, failure
records) must be valid against its published schema and parse as its model. A count
per kind keeps the extraction honest: a renamed fence would otherwise test nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mailflow.contracts.failure import FailureRecord
from mailflow.contracts.inbound import InboundMessage
from mailflow.contracts.outbound import OutboundStatusEvent
from mailflow.contracts.registry import all_schemas
from mailflow.outbound.validation import parse_message, validate
from mailflow.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Example:
    where: str
    document: dict[str, Any]

    @property
    def kind(self) -> str:
        kind = self.document.get("type")
        if kind == "email.received":
            return "inbound-message"
        if isinstance(kind, str) and kind.startswith("email."):  # sent, failed, feedback
            return "outbound-status-event"
        if kind == "mailflow.failure":
            return "failure-record"
        return "outbound-message"


def json_documents(text: str) -> list[Any]:
    """Every JSON value in `text`, one after another (JSON lines or pretty-printed)."""
    decoder = json.JSONDecoder()
    documents, at = [], 0
    while (at := _skip_blank(text, at)) < len(text):
        document, at = decoder.raw_decode(text, at)
        documents.append(document)
    return documents


def _skip_blank(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def fenced_json(path: Path) -> list[Example]:
    examples: list[Example] = []
    block: list[str] | None = None
    start = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if block is None and line.strip() == "```json":
            block, start = [], number
        elif block is not None and line.strip() == "```":
            where = f"{path.relative_to(ROOT)}:{start}"
            examples += [Example(where, d) for d in json_documents("\n".join(block))]
            block = None
        elif block is not None:
            block.append(line)
    return examples


def all_examples() -> list[Example]:
    examples = [e for doc in DOCS for e in fenced_json(doc)]
    for path in sorted((ROOT / "docs" / "examples").glob("*.json")):
        examples.append(Example(str(path.relative_to(ROOT)), json.loads(path.read_text())))
    return examples


EXAMPLES = all_examples()


def docs_settings() -> Settings:
    """The apps and domains the docs' examples use."""
    return load_settings(
        domains=["yourdomain.com", "example.com"],
        apps={"app1": {}, "app2": {}},
        aws_endpoint_url="http://127.0.0.1:1",
    )


def test_every_kind_of_example_is_found() -> None:
    counts: dict[str, int] = {}
    for example in EXAMPLES:
        counts[example.kind] = counts.get(example.kind, 0) + 1
    # README, docs/outbound.md, docs/examples/outbound.json; README and docs/inbound.md;
    # a sent and a failed event in the README and in docs/outbound.md.
    assert counts.get("outbound-message", 0) >= 3, counts
    assert counts.get("inbound-message", 0) >= 2, counts
    assert counts.get("outbound-status-event", 0) >= 4, counts


def _errors(schema: dict[str, Any], document: Any) -> list[str]:
    validator = Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


@pytest.mark.parametrize(
    "example", [e for e in EXAMPLES if e.kind == "outbound-message"], ids=lambda e: e.where
)
def test_outbound_examples_meet_the_schema_and_the_worker(example: Example) -> None:
    assert _errors(all_schemas()["outbound-message"], example.document) == []
    settings = docs_settings()
    email = validate(parse_message(json.dumps(example.document), settings), settings)
    assert email.app == example.document["source"]
    assert email.recipients


@pytest.mark.parametrize(
    "example", [e for e in EXAMPLES if e.kind != "outbound-message"], ids=lambda e: e.where
)
def test_what_mailflow_writes_matches_its_published_schema(example: Example) -> None:
    assert _errors(all_schemas()[example.kind], example.document) == []
    model = {
        "inbound-message": InboundMessage,
        "outbound-status-event": OutboundStatusEvent,
        "failure-record": FailureRecord,
    }[example.kind]
    model.model_validate(example.document)


def test_the_input_schema_takes_every_documented_leniency() -> None:
    """docs/outbound.md's leniencies, each alone: the schema must not refuse them."""
    base: dict[str, Any] = {
        "correlation_id": "c-1",
        "source": "app1",
        "email": {
            "from": "_app1@example.com",
            "to": "someone@example.net",
            "reply_to": ["a@example.net", {"address": "b@example.net", "name": "B"}],
            "subject": "s",
            "body": {"text": "t"},
            "headers": {"inReplyTo": "<a@x>", "references": "<a@x> <b@x>"},
            "attachments": [
                {
                    "filename": "a.pdf",
                    "s3_bucket": "mailflow-attachments",
                    "s3_key": "outbound/app1/a",
                }
            ],
        },
        "options": {"scheduled_send_time": "2026-01-01T08:00:00", "priority": "high"},
    }
    assert _errors(all_schemas()["outbound-message"], base) == []
    settings = docs_settings()
    validate(parse_message(json.dumps(base), settings), settings)
    # ... while what the worker refuses by type, the schema refuses too
    wrong = {**base, "email": {**base["email"], "subject": 42}}
    assert _errors(all_schemas()["outbound-message"], wrong)
    missing = {k: v for k, v in base.items() if k != "correlation_id"}
    assert _errors(all_schemas()["outbound-message"], missing)


def test_the_published_schema_files_are_current() -> None:
    """docs/schemas/ is what `mailflow schema docs/schemas` writes from the models."""
    published = ROOT / "docs" / "schemas"
    expected = {f"{stem}.schema.json": schema for stem, schema in all_schemas().items()}
    on_disk = {p.name: json.loads(p.read_text()) for p in published.glob("*.schema.json")}
    assert sorted(on_disk) == sorted(expected), "run: mailflow schema docs/schemas"
    for name, schema in expected.items():
        assert on_disk[name] == schema, f"{name} is stale: run mailflow schema docs/schemas"
