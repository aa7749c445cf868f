"""checkov finds nothing unexplained in the Terraform module and its example.

checkov lives in its own virtualenv (.venv-tools) because its pins (boto3 1.35, ...)
fight aioboto3's botocore; `make test` installs it there from a hash-pinned lock:
    python3 -m venv .venv-tools
    .venv-tools/bin/pip install -q --require-hashes -r requirements-tools.lock
Set CHECKOV=/path/to/checkov to use another one. Every accepted finding is skipped in
the code with `#checkov:skip=CKV_...:<reason>`, and this test insists on the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from tests.deploy.hcl import MODULE_DIR, ROOT

SKIP_COMMENT = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def _checkov() -> str | None:
    configured = os.environ.get("CHECKOV")
    if configured:
        return configured
    tool_venv = ROOT / ".venv-tools" / "bin" / "checkov"
    return str(tool_venv) if tool_venv.exists() else shutil.which("checkov")


def test_every_skip_says_why() -> None:
    found = 0
    for path in MODULE_DIR.rglob("*.tf"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = SKIP_COMMENT.search(line)
            if match:
                found += 1
                reason = (match.group(2) or "").strip()
                assert len(reason) >= 20, (
                    f"{path.name}:{number}: skip {match.group(1)} lacks a reason"
                )
    assert found, "no skips at all: the scan below would have shown findings"


def test_checkov_finds_no_unexplained_failures() -> None:
    checkov = _checkov()
    if checkov is None:
        pytest.skip(
            "checkov not installed: python3 -m venv .venv-tools && .venv-tools/bin/pip"
            " install -q --require-hashes -r requirements-tools.lock"
        )
    result = subprocess.run(
        [
            checkov,
            "-d",
            str(MODULE_DIR),
            "--framework",
            "terraform",
            "--skip-download",
            "--quiet",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']})"
        for report in reports
        for c in report.get("results", {}).get("failed_checks", [])
    ]
    summary = [r.get("summary", {}) for r in reports]
    assert not failed, "checkov findings (fix, or skip in the code with a reason):\n" + "\n".join(
        failed
    )
    assert all(s.get("parsing_errors", 0) == 0 for s in summary), summary
    assert sum(s.get("passed", 0) for s in summary) > 100, summary
