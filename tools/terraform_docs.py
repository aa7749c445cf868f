"""Regenerate the Inputs/Outputs tables of deploy/terraform/README.md from the .tf files.

A tiny stand-in for terraform-docs (not installable here): rewrites the text between
`<!-- BEGIN_TF_DOCS -->` and `<!-- END_TF_DOCS -->`.   python tools/terraform_docs.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.deploy.hcl import MODULE_DIR, load_module

BEGIN, END = "<!-- BEGIN_TF_DOCS -->", "<!-- END_TF_DOCS -->"


def _cell(text: object) -> str:
    value = str(text).replace('\\"', '"')
    if value.startswith("<<"):  # heredoc: drop the <<-EOT / EOT markers
        value = value.split("\n", 1)[-1].rsplit("\n", 1)[0]
    return " ".join(value.split()).replace("|", "\\|")


def _type(value: object) -> str:
    text = str(value)
    return text[2:-1] if text.startswith("${") and text.endswith("}") else text


def tables() -> str:
    module = load_module()
    rows = ["## Inputs", "", "| Name | Description | Type | Default |", "| --- | --- | --- | --- |"]
    for name, var in module.variables.items():
        default = "required" if "default" not in var else f"`{json.dumps(var['default'])}`"
        rows.append(
            f"| `{name}` | {_cell(var.get('description', ''))} | `{_cell(_type(var['type']))}` "
            f"| {_cell(default)} |"
        )
    rows += ["", "## Outputs", "", "| Name | Description |", "| --- | --- |"]
    for name, out in module.outputs.items():
        rows.append(f"| `{name}` | {_cell(out.get('description', ''))} |")
    return "\n".join(rows)


def main() -> int:
    readme = MODULE_DIR / "README.md"
    text = readme.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    readme.write_text(f"{head}{BEGIN}\n{tables()}\n{END}{tail}")
    print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
