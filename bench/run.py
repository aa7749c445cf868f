"""The benchmark suite: `make bench` (or `.venv/bin/python -m bench.run [options]`).

    --quick          small N everywhere: a smoke run (under two minutes for one tree)
    --compare DIR    run every section for the source tree in DIR ("before") and for this
                     checkout ("after"), side by side, with the change in percent
    --only SECTION   pure, e2e, latency, scaling, memory (comma-separated)
    --out PREFIX     write PREFIX.json and PREFIX.md [bench/results/latest]
    --render JSON    print the table of an earlier run's JSON (nothing is measured)

Writes the JSON (every raw figure, the machine, N per case) and a Markdown table, and
prints the table. docs/performance.md explains what each figure means and how it is
measured. The AWS endpoint is moto in a separate process, not AWS: absolute figures
for calls that AWS serves in milliseconds over a network are moto's, on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import moto
import psutil

from bench import corpus
from bench.e2e import (
    DELETE_WAIT_SECONDS,
    STALL_SECONDS,
    CaseResult,
    Context,
    Drain,
    LatencyResult,
    MemoryResult,
    ScaleResult,
    run_cases,
    run_latency,
    run_memory,
    run_scaling,
)
from bench.procs import BENCH, MAIN, Tree, clean_environ, endpoint
from bench.report import SECTIONS, Row, markdown

ALL_SECTIONS = list(SECTIONS)
Rows = list[Row]


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the machine and the trees ------------------------------------------------------------


def git(root: Path, *args: str) -> str:
    try:
        result = subprocess.run(  # noqa: S603  (read-only git queries)
            ["git", "-C", str(root), *args],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except OSError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def describe_tree(tree: Tree) -> dict[str, Any]:
    commit = git(tree.root, "rev-parse", "--short", "HEAD")
    dirty = bool(git(tree.root, "status", "--porcelain", "--untracked-files=no"))
    return {
        "label": tree.label,
        "root": str(tree.root),
        "mailflow": tree.probe.get("file"),
        "git": (commit + (" + uncommitted changes" if dirty else "")) if commit else "not git",
        "concurrency": tree.default("root", "concurrency", None),
        "max_email_bytes": tree.default("inbound", "max_email_bytes", None),
        "error": tree.probe.get("error"),
    }


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "moto": moto.__version__,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


# -- sections -------------------------------------------------------------------------------


async def run_pure(tree: Tree, quick: bool) -> dict[str, Any]:
    """bench/pure.py in a subprocess importing the tree's mailflow (killed on Ctrl-C)."""
    result = await anyio.run_process(
        [sys.executable, str(BENCH / "pure.py"), *(["--quick"] if quick else [])],
        cwd=tree.root,
        env=tree.env(),
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.decode(errors="replace")[-1500:])
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def pure_rows(data: dict[str, Any], label: str) -> Rows:
    rows: Rows = []
    titles = {c.name: c.title for c in (*corpus.INBOUND, *corpus.outbound_cases())}
    for case, figures in data.get("results", {}).items():
        for metric, value in figures.items():
            if metric == "bytes":
                continue
            shown = value if isinstance(value, int | float) else None
            rows.append(Row("pure", titles.get(case, case), metric, "emails/CPU-s", {label: shown}))
    return rows


def _ops(calls: dict[str, float]) -> str:
    """ "GetObject 1, PutItem 1, ..." (service prefix dropped: the names are distinct)."""
    ordered = sorted(calls.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{op.split(':', 1)[1]} {n:.2g}" for op, n in ordered) or "none"


def case_figures(result: CaseResult) -> list[tuple[str, str, Any]]:
    """The figures of one end-to-end case (an error when it did not complete)."""
    d, f, r = result.drain, result.floor, result.reconciled
    if result.error or d is None or f is None or r is None:
        return [("error", "", result.error or "incomplete")]
    rate = d.emails / d.seconds if d.seconds else None
    figures: list[tuple[str, str, Any]] = [
        ("worker CPU per email", "ms", d.cpu / d.emails * 1000),
        ("emails per worker CPU-second", "", d.emails / d.cpu if d.cpu else None),
        ("throughput", "emails/s", rate),
        ("endpoint floor (same calls, trivial payloads)", "emails/s", f.rate),
        ("floor: AWS calls per email", "", sum(result.floor_calls.values())),
        ("worker throughput / floor", "%", 100 * rate / f.rate if rate and f.rate else None),
        ("floor loop client CPU per email", "ms", f.cpu_seconds / f.emails * 1000),
        ("endpoint (moto) CPU per email", "ms", d.endpoint_cpu / d.emails * 1000),
        ("AWS calls per email", "", sum(d.calls.values())),
        ("AWS calls per email by operation", "", _ops(d.calls)),
        ("peak RSS growth, N at once", "MiB", max(0.0, (d.peak_kib - d.rss_before_kib) / 1024)),
        ("lost / duplicated", "", r.text() + _stalled(d)),
    ]
    if d.inputs_left:
        late = f"inputs not deleted {DELETE_WAIT_SECONDS:.0f} s after the last output"
        figures.append((late, "", d.inputs_left))
    if d.server_errors:
        errors = ", ".join(f"{op.split(':', 1)[1]} {n}" for op, n in d.server_errors.items())
        figures.append(("moto 5xx answers (retried by the worker)", "", errors))
    if f.skipped:
        figures.append(("calls the floor could not replay", "", ", ".join(f.skipped)))
    return figures


def _stalled(drain: Drain) -> str:
    if drain.complete:
        return ""
    said = "; ".join(drain.complaints) or "nothing"
    return f" (no new output for {STALL_SECONDS:.0f} s; the worker logged: {said})"


def e2e_rows(results: dict[str, CaseResult], label: str, n_of: dict[str, int]) -> Rows:
    rows: Rows = []
    titles = {c.name: c.title for c in (*corpus.INBOUND, *corpus.outbound_cases())}
    for name, result in results.items():
        case = f"{titles[name]}, N={n_of[name]}"
        rows += [Row("e2e", case, m, u, {label: v}) for m, u, v in case_figures(result)]
    return rows


def latency_rows(results: dict[str, LatencyResult], label: str) -> Rows:
    rows: Rows = []
    titles = {"inbound": "inbound plain reply", "outbound": "outbound text"}
    for direction, result in results.items():
        case = f"{titles[direction]}, {result.offered_rate:.0f}/s for {result.sent} emails"
        figures: list[tuple[str, str, Any]] = [
            ("p50", "ms", _ms(result.percentile(0.50))),
            ("p95", "ms", _ms(result.percentile(0.95))),
            ("p99", "ms", _ms(result.percentile(0.99))),
            ("offered rate achieved", "emails/s", result.achieved_rate),
            ("lost / duplicated", "", result.reconciled.text()),
        ]
        rows += [Row("latency", case, m, u, {label: v}) for m, u, v in figures]
    return rows


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def scaling_rows(results: dict[str, list[ScaleResult]], label: str) -> Rows:
    rows: Rows = []
    titles = {"inbound": "inbound plain reply", "outbound": "outbound text"}
    for direction, runs in results.items():
        for run in runs:
            case = f"{titles[direction]}, N={run.emails}, {run.workers} worker(s)"
            figures: list[tuple[str, str, Any]] = [
                ("throughput", "emails/s", run.emails / run.seconds if run.seconds else None),
                ("CPU per email, all workers", "ms", run.cpu / run.emails * 1000),
                ("lost / duplicated", "", run.reconciled.text()),
            ]
            rows += [Row("scaling", case, m, u, {label: v}) for m, u, v in figures]
    return rows


def memory_rows(results: list[MemoryResult], label: str) -> Rows:
    rows: Rows = []
    for result in results:
        figures: list[tuple[str, str, Any]] = [
            ("peak RSS growth", "MiB", result.peak_growth_mib),
            ("retained RSS growth", "MiB", result.retained_growth_mib),
            ("RSS before", "MiB", result.rss_before_mib),
            ("lost / duplicated", "", result.reconciled.text()),
        ]
        rows += [Row("memory", result.label, m, u, {label: v}) for m, u, v in figures]
    return rows


# -- orchestration --------------------------------------------------------------------------


def merge(rows: Rows) -> Rows:
    """Rows of several trees with the same (section, case, figure) become one row."""
    merged: dict[tuple[str, str, str], Row] = {}
    for row in rows:
        key = (row.section, row.case, row.metric)
        if key in merged:
            merged[key].values.update(row.values)
        else:
            merged[key] = Row(row.section, row.case, row.metric, row.unit, dict(row.values))
    return list(merged.values())


def error_rows(section: str, label: str, error: str) -> Rows:
    return [Row(section, "(section failed)", "error", "", {label: error[-300:].strip()})]


async def run_section(section: str, tree: Tree, ctx: Context) -> tuple[Any, Rows]:
    """One section for one tree: (raw results for the JSON, rows for the table)."""
    label = tree.label
    if section == "pure":
        data = await run_pure(tree, ctx.quick)
        return data, pure_rows(data, label)
    if section == "e2e":
        cases: list[Any] = [*corpus.INBOUND, *corpus.outbound_cases()]
        results = await run_cases(ctx, tree, cases)
        n_of = {c.name: ctx.n(c.n_full, c.n_quick) for c in cases}
        return results, e2e_rows(results, label, n_of)
    if section == "latency":
        latency = await run_latency(ctx, tree)
        return latency, latency_rows(latency, label)
    if section == "scaling":
        scaling = await run_scaling(ctx, tree, [1, 2] if ctx.quick else [1, 2, 4])
        return scaling, scaling_rows(scaling, label)
    memory = await run_memory(ctx, tree)
    return memory, memory_rows(memory, label)


def jsonable(value: Any) -> Any:
    """Dataclasses (and lists/dicts of them) as plain JSON values."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


async def run_all(args: argparse.Namespace, trees: list[Tree], log_dir: Path) -> dict[str, Any]:
    sections = args.only.split(",") if args.only else ALL_SECTIONS
    unknown = set(sections) - set(ALL_SECTIONS)
    if unknown:
        raise SystemExit(f"unknown section(s) {sorted(unknown)}; choose from {ALL_SECTIONS}")
    rows: Rows = []
    raw: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    with endpoint(log_dir / "endpoint.log") as ep:
        quick = args.quick
        ctx = Context(
            endpoint=ep,
            quick=quick,
            log_dir=log_dir,
            idle_seconds=0.5 if quick else 3.0,
            settle_seconds=1.0 if quick else 3.0,
            log=log,
        )
        for section in sections:
            started = time.perf_counter()
            for tree in trees:  # before, then after: drift on a shared machine hits both
                log(f"{section}: {tree.label} ({tree.root})")
                try:
                    result, section_rows = await run_section(section, tree, ctx)
                except Exception as exc:
                    log(f"{section}: {tree.label} failed: {exc!r}")
                    result, section_rows = (
                        {"error": repr(exc)},
                        error_rows(section, tree.label, repr(exc)),
                    )
                raw.setdefault(section, {})[tree.label] = jsonable(result)
                rows += section_rows
            seconds[section] = round(time.perf_counter() - started, 1)
            log(f"{section}: done in {seconds[section]:.0f} s")
    return {"rows": merge(rows), "raw": raw, "section_seconds": seconds}


def load_trees(compare: str | None) -> list[Tree]:
    if compare is None:
        return [Tree("main", MAIN).load()]
    trees = []
    for label, root in (("before", Path(compare).resolve()), ("after", MAIN)):
        tree = Tree(label, root)
        try:
            tree.load()
        except (RuntimeError, OSError, ValueError) as exc:
            log(f"{label}: {exc}; its figures will be n/a")
            tree.probe = {"error": str(exc)}
        trees.append(tree)
    return trees


def header(meta: dict[str, Any], labels: list[str]) -> str:
    m = meta["machine"]
    lines = [
        f"## mailflow benchmark, {meta['started']}",
        "",
        f"- machine: {m['cpu']}, {m['logical_cpus']} CPUs ({m['physical_cores']} cores),"
        f" {m['memory_gib']} GiB, {m['platform']}, Python {m['python']}; shared with other"
        f" users (load average {m['load_average_start']} at start, {m['load_average_end']}"
        " at end)",
        f"- endpoint: moto {m['moto']} (its server app in a process of its own, with"
        " mailflow's fast SQS clock), not AWS: call latencies and the endpoint's CPU are"
        " moto's on this machine",
        f"- mode: {'--quick' if meta['quick'] else 'full'}; command `{meta['command']}`;"
        f" {meta['seconds']:.0f} s",
    ]
    for tree in meta["trees"]:
        lines.append(
            f"- {tree['label']}: {tree['root']} (git {tree['git']}; mailflow from"
            f" {tree['mailflow']}; concurrency {tree['concurrency']})"
        )
    if len(labels) == 2:
        lines.append("- change: after relative to before")
    return "\n".join(lines) + "\n"


def render(path: Path) -> str:
    """The Markdown of an earlier run, from its JSON (after a change to the table's form)."""
    document = json.loads(path.read_text())
    rows = [Row(**row) for row in document["rows"]]
    labels = [tree["label"] for tree in document["meta"]["trees"]]
    return header(document["meta"], labels) + "\n" + markdown(rows, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N: a smoke run")
    parser.add_argument("--compare", metavar="DIR", help="an older source tree, side by side")
    parser.add_argument("--only", metavar="SECTION", help=",".join(ALL_SECTIONS))
    parser.add_argument("--out", metavar="PREFIX", default=str(BENCH / "results" / "latest"))
    parser.add_argument(
        "--render", metavar="JSON", help="only print the table of an earlier run's JSON"
    )
    args = parser.parse_args()
    if args.render:
        print(render(Path(args.render)))
        return
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python -m bench.run", *sys.argv[1:]]),
        "quick": args.quick,
        "machine": machine(),
        "corpus": corpus.fingerprint(),
        "n": {
            c.name: c.n_quick if args.quick else c.n_full
            for c in (*corpus.INBOUND, *corpus.outbound_cases())
        },
    }
    trees = load_trees(args.compare)
    meta["trees"] = [describe_tree(t) for t in trees]
    labels = [t.label for t in trees]
    for name in set(os.environ) - set(clean_environ()):
        del os.environ[name]  # the caller's MAILFLOW_/AWS_ settings must not steer the harness
    log_dir = Path(args.out).parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log(f"worker and endpoint logs in {log_dir}")
    outcome = anyio.run(run_all, args, trees, log_dir)
    meta["seconds"] = time.perf_counter() - started
    meta["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["section_seconds"] = outcome["section_seconds"]
    table = header(meta, labels) + "\n" + markdown(outcome["rows"], labels)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": meta,
        "rows": [r.as_dict() for r in outcome["rows"]],
        "raw": outcome["raw"],
    }
    out.with_suffix(".json").write_text(json.dumps(document, indent=1, default=str) + "\n")
    out.with_suffix(".md").write_text(table)
    print(table)
    log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
