"""Derive the IAM actions the worker needs from the AWS calls in mailflow/'s source.

Why: the task role must grant exactly what the code calls. Rather than keeping a list
by hand, this walks every module with `ast`, finds calls `<expr>.<method>(...)` whose
method is an operation of a service the worker uses (botocore's own service models give
the snake_case -> OperationName map), and maps each operation to its IAM actions
(most are `<prefix>:<Operation>`; the exceptions are in IAM_OVERRIDES, with sources).
tests/deploy/test_iam.py compares the result with the Terraform task-role policy.

Excluded: operator/dev-only code (mailflow/ops/**, mailflow/local/**, mailflow/cli.py) - it
runs with the operator's credentials, not the task role's.
A call that only looks like an AWS call can be excluded with `# iam: ignore` on its line.

    python tools/iam_actions.py               # table (markdown) of calls -> actions
    python tools/iam_actions.py --actions     # just the sorted action list
    python tools/iam_actions.py --write-docs  # refresh the table in docs/deployment.md
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mailflow"

# botocore service name -> (IAM prefix, words in a receiver expression that name it)
SERVICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sqs": ("sqs", ("sqs", "queue")),
    "s3": ("s3", ("s3", "bucket")),
    "sesv2": ("ses", ("ses", "mail")),
    "dynamodb": ("dynamodb", ("dynamodb", "ddb", "dynamo", "table")),
}

EXCLUDED_PATHS = {"mailflow/cli.py"}
EXCLUDED_DIRS = {"mailflow/local", "mailflow/ops"}
IGNORE_MARKER = "# iam: ignore"

# Operations whose IAM action is not `<prefix>:<OperationName>`.
#  - S3: HeadObject is authorized as GetObject, HeadBucket/ListObjects(V2) as ListBucket,
#    *Batch/multipart forms as the single action (AWS S3 API reference, "Permissions").
#  - SQS: batch APIs are authorized as their single-message action (SQS developer guide).
#  - SESv2 SendEmail with Content.Raw is authorized as ses:SendRawEmail too: AccessDenied
#    names ses:SendRawEmail (aws/aws-actionmailer-ses-ruby#10, nodemailer/nodemailer#1734,
#    anymail/django-anymail#384, whose docs now list both for SESv2 SendEmail).
IAM_OVERRIDES: dict[tuple[str, str], tuple[str, ...]] = {
    ("s3", "HeadObject"): ("s3:GetObject",),
    ("s3", "HeadBucket"): ("s3:ListBucket",),
    ("s3", "ListObjects"): ("s3:ListBucket",),
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "DeleteObjects"): ("s3:DeleteObject",),
    ("s3", "CopyObject"): ("s3:GetObject", "s3:PutObject"),
    ("s3", "CreateMultipartUpload"): ("s3:PutObject",),
    ("s3", "UploadPart"): ("s3:PutObject",),
    ("s3", "CompleteMultipartUpload"): ("s3:PutObject",),
    ("s3", "GetObjectTagging"): ("s3:GetObjectTagging",),
    ("sqs", "SendMessageBatch"): ("sqs:SendMessage",),
    ("sqs", "DeleteMessageBatch"): ("sqs:DeleteMessage",),
    ("sqs", "ChangeMessageVisibilityBatch"): ("sqs:ChangeMessageVisibility",),
    ("sesv2", "SendEmail"): ("ses:SendEmail", "ses:SendRawEmail"),
    ("dynamodb", "BatchGetItem"): ("dynamodb:BatchGetItem",),
}

# s3transfer's managed helpers are not operations but call them.
TRANSFER_METHODS: dict[str, tuple[str, ...]] = {
    "upload_file": (
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
    ),
    "upload_fileobj": (
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
    ),
    "download_file": ("HeadObject", "GetObject"),
    "download_fileobj": ("HeadObject", "GetObject"),
}

# SSE-KMS with the deployment's customer managed key: what each action needs from KMS
# (SQS SSE: producers GenerateDataKey + Decrypt, consumers Decrypt; S3 SSE-KMS: writers
# GenerateDataKey, readers Decrypt, multipart writers Decrypt too). DynamoDB uses the
# key through its service grant (key policy), so it adds nothing here.
KMS_IMPLIED: dict[str, tuple[str, ...]] = {
    "sqs:SendMessage": ("kms:GenerateDataKey", "kms:Decrypt"),
    "sqs:ReceiveMessage": ("kms:Decrypt",),
    "s3:GetObject": ("kms:Decrypt",),
    "s3:PutObject": ("kms:GenerateDataKey", "kms:Decrypt"),
}


@dataclass(frozen=True, order=True)
class AwsCall:
    """One call site: where it is, which operation it is, which IAM actions it needs."""

    path: str
    line: int
    service: str
    operation: str
    actions: tuple[str, ...]


@dataclass
class Derivation:
    calls: list[AwsCall] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def actions(self) -> set[str]:
        """Every IAM action the calls need, KMS actions implied by SSE-KMS included."""
        direct = {a for call in self.calls for a in call.actions}
        return direct | {k for a in direct for k in KMS_IMPLIED.get(a, ())}


@cache
def operations() -> dict[str, dict[str, str]]:
    """snake_case method -> OperationName, per service, from botocore's models."""
    session = botocore.session.get_session()
    table: dict[str, dict[str, str]] = {}
    for service in SERVICES:
        model = session.get_service_model(service)
        table[service] = {xform_name(op): op for op in model.operation_names}
    return table


def iam_actions(service: str, operation: str) -> tuple[str, ...]:
    prefix = SERVICES[service][0]
    return IAM_OVERRIDES.get((service, operation), (f"{prefix}:{operation}",))


def worker_files(package: Path = PACKAGE) -> Iterator[Path]:
    """Python files that run with the task role (operator/dev tools excluded)."""
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).as_posix()
        if rel in EXCLUDED_PATHS:
            continue
        if any(rel.startswith(d + "/") for d in EXCLUDED_DIRS):
            continue
        yield path


def _receiver_hint(node: ast.expr) -> set[str]:
    """Services named by the receiver expression (`clients.sqs`, `self._s3`, ...)."""
    text = ast.unparse(node).lower()
    return {svc for svc, (_, words) in SERVICES.items() if any(w in text for w in words)}


def _string_arg(call: ast.Call, keyword: str) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    for kw in call.keywords:
        if (
            kw.arg == keyword
            and isinstance(kw.value, ast.Constant)
            and isinstance(kw.value.value, str)
        ):
            return kw.value.value
    return None


def _resolve(method: str, receiver: ast.expr, where: str) -> tuple[str | None, str | None]:
    """(service, problem) for a method name that is an operation somewhere."""
    candidates = {svc for svc, ops in operations().items() if method in ops}
    if not candidates:
        return None, None
    hinted = candidates & _receiver_hint(receiver)
    if len(hinted) == 1:
        return hinted.pop(), None
    if len(candidates) == 1:
        return candidates.pop(), None
    return None, (
        f"{where}: .{method}() is an operation of {sorted(candidates)}; name the client"
        " after its service (e.g. `clients.sqs`) or mark the line `# iam: ignore`"
    )


def _operations_of_call(call: ast.Call, where: str) -> tuple[str | None, list[str], str | None]:
    """(service, [OperationName], problem) of one `<expr>.<method>(...)` call."""
    assert isinstance(call.func, ast.Attribute)
    method, receiver = call.func.attr, call.func.value
    if method in ("generate_presigned_url", "get_paginator", "generate_presigned_post"):
        target = _string_arg(
            call, "ClientMethod" if method == "generate_presigned_url" else "operation_name"
        )
        if method == "generate_presigned_post":
            target = "put_object"
        if target is None:
            return (
                None,
                [],
                f"{where}: .{method}() needs a literal operation name to derive IAM from",
            )
        service, problem = _resolve(target, receiver, where)
        return service, [operations()[service][target]] if service else [], problem
    if method in TRANSFER_METHODS and "s3" in _receiver_hint(receiver):
        return "s3", list(TRANSFER_METHODS[method]), None
    service, problem = _resolve(method, receiver, where)
    return service, [operations()[service][method]] if service else [], problem


def derive(package: Path = PACKAGE) -> Derivation:
    result = Derivation()
    for path in worker_files(package):
        source = path.read_text()
        lines = source.splitlines()
        rel = path.relative_to(package.parent).as_posix()
        for node in ast.walk(ast.parse(source, filename=str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            end = getattr(node, "end_lineno", node.lineno) or node.lineno
            if any(IGNORE_MARKER in lines[i - 1] for i in range(node.lineno, end + 1)):
                continue
            where = f"{rel}:{node.lineno}"
            service, ops, problem = _operations_of_call(node, where)
            if problem:
                result.problems.append(problem)
            for op in ops:
                assert service is not None
                result.calls.append(
                    AwsCall(rel, node.lineno, service, op, iam_actions(service, op))
                )
    result.calls.sort()
    result.problems.sort(key=lambda p: (p.split(":")[0], int(p.split(":")[1])))
    return result


def markdown_table(derivation: Derivation) -> str:
    """IAM action -> operations -> modules calling them (paths, no line numbers, so the
    table changes only when what the code calls changes), for docs/deployment.md."""
    operations_of: dict[str, set[str]] = {}
    modules_of: dict[str, set[str]] = {}
    for call in derivation.calls:
        for action in call.actions:
            operations_of.setdefault(action, set()).add(f"{call.service} {call.operation}")
            modules_of.setdefault(action, set()).add(call.path)
    rows = ["| IAM action | operations | called in |", "| --- | --- | --- |"]
    for action in sorted(derivation.actions):
        if action in operations_of:
            operations = ", ".join(sorted(operations_of[action]))
            modules = ", ".join(f"`{path}`" for path in sorted(modules_of[action]))
        else:
            implied_by = sorted(a for a in operations_of if action in KMS_IMPLIED.get(a, ()))
            operations = "SSE-KMS, implied by " + ", ".join(f"`{a}`" for a in implied_by)
            modules = "(the calls of those actions)"
        rows.append(f"| `{action}` | {operations} | {modules} |")
    return "\n".join(rows)


def docs_block(derivation: Derivation) -> str:
    """The generated part of the deployment guide: the table and what it leaves out."""
    excluded = sorted([f"`{p}`" for p in EXCLUDED_PATHS] + [f"`{d}/`" for d in EXCLUDED_DIRS])
    return "\n".join(
        [
            markdown_table(derivation),
            "",
            f"Not counted (they run with an operator's credentials): {', '.join(excluded)},"
            f" and lines marked `{IGNORE_MARKER}`.",
        ]
    )


DOC = ROOT / "docs" / "deployment.md"
BEGIN, END = "<!-- BEGIN_IAM_TABLE -->", "<!-- END_IAM_TABLE -->"


def render_docs(text: str, derivation: Derivation) -> str:
    """`text` (the deployment guide) with the block between the IAM_TABLE markers
    regenerated; tests/deploy/test_docs_iam_table.py compares the result with the file."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"the deployment guide lacks the {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{docs_block(derivation)}\n{END}{tail}"


def write_docs(derivation: Derivation, doc: Path = DOC) -> None:
    """Replace the table between the IAM_TABLE markers of the deployment guide."""
    doc.write_text(render_docs(doc.read_text(), derivation))


def main(argv: list[str]) -> int:
    derivation = derive()
    for problem in derivation.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if "--write-docs" in argv:
        write_docs(derivation)
    elif "--actions" in argv:
        print("\n".join(sorted(derivation.actions)))
    else:
        print(markdown_table(derivation))
    return 1 if derivation.problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
