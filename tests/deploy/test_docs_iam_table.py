"""docs/deployment.md's IAM table is the one tools/iam_actions.py derives from the code.

The table is regenerated in memory from the live source (the same derivation
test_iam.py checks the task role against) and compared with the guide: a call added,
removed or moved to another module fails here until `--write-docs` is run again, so the
guide never cites a file that no longer exists.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType

import pytest

from tests.deploy.hcl import ROOT

GUIDE = ROOT / "docs" / "deployment.md"
COMMAND = ".venv/bin/python tools/iam_actions.py --write-docs"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "iam_actions_docs", ROOT / "tools" / "iam_actions.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    return _tool()


def _block(text: str, tool: ModuleType) -> str:
    return text.split(tool.BEGIN, 1)[1].split(tool.END, 1)[0]


def _first_difference(a: str, b: str) -> int | str:
    pairs = zip(a.splitlines(), b.splitlines(), strict=False)
    return next((n for n, (x, y) in enumerate(pairs, 1) if x != y), "?")


def test_the_guides_iam_table_is_the_generated_one(tool: ModuleType) -> None:
    current = GUIDE.read_text()
    expected = tool.render_docs(current, tool.derive())
    assert current == expected, (
        "docs/deployment.md's IAM table is not what the code calls today: run "
        f"`{COMMAND}` (first difference at line {_first_difference(current, expected)})"
    )


def test_the_table_cites_existing_modules_without_line_numbers(tool: ModuleType) -> None:
    block = _block(GUIDE.read_text(), tool)
    table = block.partition("Not counted")[0]
    paths = re.findall(r"`(mailflow/[^`]+?\.py)(:\d+)?`", table)
    assert paths, "no module cited: the table is empty or not generated"
    assert not [p for p, line in paths if line], "the table carries line numbers"
    missing = sorted({p for p, _ in paths if not (ROOT / p).is_file()})
    assert not missing, f"the IAM table cites modules that do not exist: {missing}; run `{COMMAND}`"


def test_the_exclusions_name_existing_paths(tool: ModuleType) -> None:
    """An exclusion that names a moved file no longer excludes it: operator-only code
    would then count as the worker's (EXCLUDED_PATHS/EXCLUDED_DIRS in the tool)."""
    stale = sorted(
        p for p in [*tool.EXCLUDED_PATHS, *tool.EXCLUDED_DIRS] if not (ROOT / p).exists()
    )
    assert not stale, f"tools/iam_actions.py excludes paths that do not exist: {stale}"


def test_rendering_replaces_only_the_marked_block(tool: ModuleType) -> None:
    derivation = tool.Derivation()
    text = f"before\n{tool.BEGIN}\nstale | table\n{tool.END}\nafter\n"
    rendered = tool.render_docs(text, derivation)
    assert rendered.startswith(f"before\n{tool.BEGIN}\n| IAM action | operations | called in |")
    assert rendered.endswith(f"{tool.END}\nafter\n")
    assert "stale" not in rendered
    assert tool.render_docs(rendered, derivation) == rendered
    with pytest.raises(ValueError, match="markers"):
        tool.render_docs("no markers here", derivation)
