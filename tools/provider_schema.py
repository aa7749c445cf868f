"""Extract attribute/block names of the AWS provider's resources the module uses.

Why: `terraform validate` needs the provider binary, which cannot be downloaded here.
The npm package @cdktf/provider-aws is generated from the provider's schema; its
`toTerraform` converters name every argument and nested block. This script reads them
for each resource/data type deploy/terraform uses and writes
tests/deploy/aws_provider_schema.json, so test_terraform.py can catch a misspelt or
non-existent argument offline. Refresh after changing resource types:

    cd /tmp && npm pack @cdktf/provider-aws@21.22.1 && tar xzf cdktf-provider-aws-*.tgz
    python tools/provider_schema.py /tmp/package
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.deploy.hcl import EXAMPLE_DIR, MODULE_DIR, ROOT, load_module

OUT = ROOT / "tests" / "deploy" / "aws_provider_schema.json"
TYPE = re.compile(r'tfResourceType = "(\w+)"')
KEY = re.compile(r"^\s+(\w+): .*[tT]oTerraform\b", re.M)


def used_types() -> tuple[set[str], set[str]]:
    resources: set[str] = set()
    data: set[str] = set()
    for directory in (MODULE_DIR, EXAMPLE_DIR):
        module = load_module(directory)
        resources |= set(module.resources)
        data |= set(module.data)
    return resources, data


def main(package: Path) -> int:
    wanted_resources, wanted_data = used_types()
    found: dict[str, dict[str, list[str]]] = {"resource": {}, "data": {}}
    version = json.loads((package / "package.json").read_text())["cdktf"]["provider"]["version"]
    for index in (package / "lib").glob("*/index.js"):
        text = index.read_text()
        match = TYPE.search(text)
        if not match:
            continue
        kind = "data" if index.parent.name.startswith("data-aws-") else "resource"
        name = match.group(1)
        if name in (wanted_data if kind == "data" else wanted_resources):
            found[kind][name] = sorted(set(KEY.findall(text)))
    missing = (wanted_resources - set(found["resource"])) | (wanted_data - set(found["data"]))
    OUT.write_text(
        json.dumps({"provider": "hashicorp/aws", "version": version, **found}, indent=1) + "\n"
    )
    print(f"wrote {OUT} (aws provider {version}); types not found: {sorted(missing)}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
