"""Generate deploy/compose/grafana/dashboards/mailflow.json (the provisioned dashboard).

Why a generator: forty-odd panel dicts are easier to review as a table of queries than as
raw JSON. Run `python tools/grafana_dashboard.py` after editing and commit the output;
tests/deploy/test_compose.py checks that every metric the dashboard queries exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "deploy/compose/grafana/dashboards/mailflow.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}


def panel(
    title: str,
    targets: list[tuple[str, str]],
    *,
    kind: str = "timeseries",
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    description: str = "",
) -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"w": width, "h": height},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}},
        "targets": [_target(e, lg, chr(ord("A") + i)) for i, (e, lg) in enumerate(targets)],
    }


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1}}


def panels() -> list[dict[str, Any]]:
    return [
        row("Throughput"),
        panel(
            "Messages received / s",
            [
                (
                    f"sum by (direction) (rate(mailflow_messages_received_total[{RATE}]))",
                    "{{direction}}",
                )
            ],
            unit="ops",
        ),
        panel(
            "Messages handled / s by app and outcome",
            [
                (
                    "sum by (direction, app, outcome) "
                    f"(rate(mailflow_messages_handled_total[{RATE}]))",
                    "{{direction}} {{app}} {{outcome}}",
                )
            ],
            unit="ops",
        ),
        row("Latency"),
        panel(
            "Handling time p50 / p95 / p99",
            [
                (
                    f"histogram_quantile({q}, sum by (le, direction) "
                    f"(rate(mailflow_handling_seconds_bucket[{RATE}])))",
                    f"{{{{direction}}}} p{int(q * 100)}",
                )
                for q in (0.5, 0.95, 0.99)
            ],
            unit="s",
        ),
        panel(
            "Handling time distribution (successful)",
            [
                (
                    "sum by (le) "
                    f'(rate(mailflow_handling_seconds_bucket{{outcome="success"}}[{RATE}]))',
                    "{{le}}",
                )
            ],
            kind="heatmap",
            unit="s",
        ),
        row("Failures"),
        panel(
            "Failures / s by reason",
            [
                (
                    f"sum by (direction, reason) (rate(mailflow_messages_failed_total[{RATE}]))",
                    "{{direction}} {{reason}}",
                )
            ],
            unit="ops",
            width=8,
        ),
        panel(
            "Retries / s",
            [
                (f"sum by (direction) (rate(mailflow_retries_total[{RATE}]))", "{{direction}}"),
                (
                    f"sum by (direction) (rate(mailflow_receive_errors_total[{RATE}]))",
                    "{{direction}} receive errors",
                ),
            ],
            unit="ops",
            width=8,
        ),
        panel(
            "Failure records written to MAILFLOW_DLQ (1 h)",
            [
                (
                    "sum by (direction, reason) (increase(mailflow_dlq_records_total[1h]))",
                    "{{direction}} {{reason}}",
                )
            ],
            width=8,
        ),
        panel(
            "In flight",
            [("sum by (direction) (mailflow_in_flight)", "{{direction}}")],
            width=8,
        ),
        row("Queues"),
        panel(
            "Queue depth by queue and state",
            [("max by (queue, state) (mailflow_queue_depth)", "{{queue}} {{state}}")],
            width=16,
        ),
        panel(
            "DLQ depth (visible)",
            [
                (
                    'max by (queue) (mailflow_queue_depth{queue=~".*dlq.*", state="visible"})',
                    "{{queue}}",
                )
            ],
            kind="stat",
            width=8,
            description="Failure records waiting in MAILFLOW_DLQ; anything above 0 needs a look"
            " (`mailflow peek`, then `mailflow redrive`).",
        ),
        row("Pipelines"),
        panel(
            "Inbound emails / s by outcome",
            [
                (
                    f"sum by (outcome) (rate(mailflow_inbound_emails_total[{RATE}]))",
                    "{{outcome}}",
                ),
                (
                    f"sum by (reason) (rate(mailflow_inbound_rejected_total[{RATE}]))",
                    "rejected: {{reason}}",
                ),
            ],
            unit="ops",
        ),
        panel(
            "Outbound sent / deferred / s",
            [
                (f"sum by (app) (rate(mailflow_outbound_sent_total[{RATE}]))", "sent {{app}}"),
                (
                    f"sum by (reason) (rate(mailflow_outbound_deferred_total[{RATE}]))",
                    "deferred: {{reason}}",
                ),
            ],
            unit="ops",
        ),
        row("SES"),
        panel(
            "SES send rate vs quota",
            [
                (f"sum(rate(mailflow_outbound_sent_total[{RATE}]))", "sent / s"),
                ("max(mailflow_ses_account_max_send_rate)", "SES MaxSendRate (account)"),
                ("sum(mailflow_ses_send_rate_limit)", "mailflow limit (all tasks)"),
                (f"sum(rate(mailflow_ses_throttled_total[{RATE}]))", "throttled / s"),
            ],
            unit="ops",
        ),
        panel(
            "SES SendEmail latency p95",
            [
                (
                    "histogram_quantile(0.95, sum by (le) "
                    f"(rate(mailflow_outbound_ses_send_seconds_bucket[{RATE}])))",
                    "p95",
                )
            ],
            unit="s",
            width=6,
        ),
        panel(
            "SES 24 h quota remaining",
            [("min(mailflow_ses_quota_remaining)", "remaining")],
            kind="stat",
            width=3,
        ),
        panel(
            "SES sending paused",
            [("max(mailflow_ses_quota_exhausted)", "paused")],
            kind="stat",
            width=3,
            description="1 while sending is paused: daily quota used up or sending disabled.",
        ),
    ]


def _layout(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assign ids and x/y positions left to right, wrapping at Grafana's 24 columns."""
    x = y = row_height = 0
    for number, item in enumerate(items, start=1):
        grid = item["gridPos"]
        if item["type"] == "row" or x + grid["w"] > 24:
            x, y, row_height = 0, y + row_height, 0
        grid["x"], grid["y"] = x, y
        item["id"] = number
        x += grid["w"]
        row_height = max(row_height, grid["h"])
        if item["type"] == "row":
            x, y, row_height = 0, y + grid["h"], 0
    return items


def dashboard() -> dict[str, Any]:
    return {
        "uid": "mailflow",
        "title": "mailflow",
        "tags": ["mailflow"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {"text": "Prometheus", "value": "prometheus"},
                },
            ]
        },
        "panels": _layout(panels()),
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {OUT}")
