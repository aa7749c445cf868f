"""List values in environment variables: `a,b` as people type them, `["a","b"]` as
Terraform's `jsonencode` writes them. One parser for every list setting."""

from __future__ import annotations

import json
from typing import Any


def split_list(value: Any) -> Any:
    """Turn a comma list or a JSON list string into a list; anything else passes through."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value
