"""Parsed view of the Terraform module for invariant tests (python-hcl2, no provider).

python-hcl2 keeps expressions as strings (`"${var.x}"`) and quotes literal strings and
block labels; `load_module` strips that noise so tests read `resources["aws_sqs_queue"]
["this"]["name"] == "${each.value}"` and literal strings come back bare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
MODULE_DIR = ROOT / "deploy" / "terraform"
EXAMPLE_DIR = MODULE_DIR / "examples" / "complete"


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def clean(node: Any) -> Any:
    """Drop python-hcl2's markers and quotes, recursively."""
    if isinstance(node, dict):
        return {
            _unquote(k): clean(v)
            for k, v in node.items()
            if k not in ("__is_block__", "__comments__", "__inline_comments__")
        }
    if isinstance(node, list):
        return [clean(v) for v in node]
    if isinstance(node, str):
        return _unquote(node)
    return node


@dataclass
class Module:
    """Blocks of every .tf file of one directory, merged by kind."""

    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def resource(self, kind: str, name: str) -> dict[str, Any]:
        return self.resources[kind][name]


def load_module(directory: Path = MODULE_DIR) -> Module:
    module = Module()
    for path in sorted(directory.glob("*.tf")):
        text = path.read_text()
        module.files[path.name] = text
        parsed = clean(hcl2.loads(text))
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                module.resources.setdefault(kind, {}).update(named)
        for block in parsed.get("data", []):
            for kind, named in block.items():
                module.data.setdefault(kind, {}).update(named)
        for block in parsed.get("variable", []):
            module.variables.update(block)
        for block in parsed.get("output", []):
            module.outputs.update(block)
        for block in parsed.get("locals", []):
            module.locals.update(block)
        for block in parsed.get("module", []):
            module.modules.update(block)
    return module


def expr(value: Any) -> str:
    """The expression inside `${...}` (or the literal as text)."""
    text = str(value)
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1]
    return text


_REF = re.compile(r"\b(var|local)\.([A-Za-z_][A-Za-z0-9_]*)")


def evaluate_number(module: Module, value: Any, overrides: dict[str, Any] | None = None) -> float:
    """Evaluate a numeric expression of var/local references, + - * /, min, max, ceil.

    Enough for the module's arithmetic (queue visibility, maxReceiveCount, stopTimeout),
    with variables at their defaults unless overridden: the invariants must hold for
    the defaults and for any values a caller may pass.
    """
    overrides = overrides or {}
    if isinstance(value, int | float):
        return float(value)

    def substitute(match: re.Match[str]) -> str:
        kind, name = match.groups()
        if kind == "var":
            return repr(float(overrides.get(name, module.variables[name]["default"])))
        return f"({evaluate_number(module, module.locals[name], overrides)!r})"

    python = _REF.sub(substitute, expr(value))
    allowed = {"min": min, "max": max, "ceil": __import__("math").ceil}
    return float(eval(python, {"__builtins__": {}}, allowed))
