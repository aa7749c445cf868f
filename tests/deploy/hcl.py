"""Parsed view of the Terraform module for invariant tests (python-hcl2, no provider).

python-hcl2 keeps expressions as strings (`"${var.x}"`) and quotes literal strings and
block labels; `load_module` strips that noise so tests read `resources["aws_sqs_queue"]
["this"]["name"] == "${each.value}"` and literal strings come back bare.
"""

from __future__ import annotations

import math
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
    """Evaluate a numeric expression of var/local references, + - * /, min, max, ceil,
    floor.

    Enough for the module's arithmetic (queue visibility, maxReceiveCount, stopTimeout,
    the byte budget), with variables at their defaults unless overridden: the
    invariants must hold for the defaults and for any values a caller may pass.
    """
    return float(evaluate(module, value, overrides))


def evaluate_condition(module: Module, condition: Any, values: dict[str, Any]) -> bool:
    """Evaluate a validation/precondition condition with `values` for the variables
    (defaults for the others)."""
    return bool(evaluate(module, condition, values))


_FUNCTIONS: dict[str, Any] = {
    "min": min,
    "max": max,
    "ceil": math.ceil,
    "floor": math.floor,
    "length": len,
    "contains": lambda items, item: item in items,
    "range": lambda *a: list(range(*a)),
    "tolist": list,
    "coalesce": lambda *v: next(x for x in v if x is not None and x != ""),
    "tostring": lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v),
}


def evaluate(module: Module, value: Any, values: dict[str, Any] | None = None) -> Any:
    """Evaluate an expression of var/local references, numbers, comparisons, && || !,
    a top-level ternary and the functions above. Enough for the numeric and boolean
    rules the tests probe; anything else (regex, can, try, data sources) raises rather
    than guess."""
    values = values or {}
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        kind, name = match.groups()
        if kind == "var":
            given = values[name] if name in values else module.variables[name].get("default")
            return f"({given!r})"
        return f"({evaluate(module, module.locals[name], values)!r})"

    text = expr(value)
    text = _TERNARY.sub(r"(\2 if \1 else \3)", text)
    text = text.replace("&&", " and ").replace("||", " or ")
    text = re.sub(r"!(?!=)", " not ", text)
    text = re.sub(r"\bnull\b", "None", text)
    text = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", text))
    python = _REF.sub(substitute, text)
    return eval(python, {"__builtins__": {}}, _FUNCTIONS)


# `a ? b : c` with simple operands (no nested ternaries, no ':' inside b).
_TERNARY = re.compile(r"^\s*([^?]+?)\s*\?\s*([^:]+?)\s*:\s*(.+)$")


def render(module: Module, template: str, values: dict[str, Any]) -> str:
    """A string template with `${var.x}`/`${local.x}` replaced from `values` (then
    variable defaults), e.g. a generated resource name."""

    def substitute(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        key = name if kind == "var" else f"local.{name}"
        if key in values:
            return str(values[key])
        if kind == "var":
            return str(module.variables[name]["default"])
        return render(module, str(module.locals[name]), values)

    coalesce = re.fullmatch(r'\$\{coalesce\(var\.(\w+), "(.*)"\)\}', template)
    if coalesce:
        given = values.get(coalesce.group(1), module.variables[coalesce.group(1)].get("default"))
        if given is not None:
            return str(given)
        template = coalesce.group(2)
    return re.sub(r"\$\{(var|local)\.([A-Za-z_][A-Za-z0-9_]*)\}", substitute, template)
