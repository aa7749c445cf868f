"""Rows of figures, and the Markdown tables they become (one table per section).

A row is one figure of one case, with a value per tree ("main" alone, or "before" and
"after" side by side with the change). A value a tree could not produce is None and
shows as "n/a"; a string value (an operation list, "lost / duplicated") is shown as is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

Value = float | int | str | None

SECTIONS = {
    "pure": "1. Pure cores (emails per CPU-second, higher is better)",
    "e2e": "2. The worker process end to end (one worker)",
    "latency": "3a. Latency at a fixed offered rate (one worker)",
    "scaling": "3b. Throughput with more worker processes on the same queues",
    "memory": "4. Worker memory (RSS growth over the RSS before the email)",
}


@dataclass
class Row:
    section: str
    case: str
    metric: str
    unit: str = ""
    values: dict[str, Value] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fmt(value: Value, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if unit == "%":
        return f"{value:.0f} %"
    magnitude = abs(value)
    if magnitude >= 100:
        text = f"{value:,.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return text


def change(before: Value, after: Value, unit: str = "") -> str:
    """after relative to before, in percent; for a percentage the difference in points, for
    memory the difference in MiB (growths near zero or below make percentages meaningless);
    "" when either is not a number."""
    if not isinstance(before, int | float) or not isinstance(after, int | float):
        return ""
    if unit == "%":
        return f"{after - before:+.0f} pts"
    if unit == "MiB":
        return f"{after - before:+.1f} MiB"
    if before == 0:
        return ""
    return f"{(after / before - 1) * 100:+.0f} %"


def markdown(rows: list[Row], labels: list[str]) -> str:
    """One Markdown table per section, in the order of SECTIONS."""
    compare = len(labels) == 2
    out: list[str] = []
    for section, title in SECTIONS.items():
        chosen = [r for r in rows if r.section == section]
        if not chosen:
            continue
        head = ["case", "figure", *labels, *(["change"] if compare else [])]
        out += [f"### {title}", "", "| " + " | ".join(head) + " |"]
        out.append("| " + " | ".join(["---", "---"] + ["---:"] * (len(head) - 2)) + " |")
        previous = None
        for row in chosen:
            case = row.case if row.case != previous else ""
            previous = row.case
            metric = f"{row.metric} ({row.unit})" if row.unit and row.unit != "%" else row.metric
            cells = [case, metric, *(fmt(row.values.get(label), row.unit) for label in labels)]
            if compare:
                before, after = row.values.get(labels[0]), row.values.get(labels[1])
                cells.append(change(before, after, row.unit))
            out.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
        out.append("")
    return "\n".join(out)
