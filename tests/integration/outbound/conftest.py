"""Outbound integration fixtures: the shared moto fixtures with a fast default send rate.

moto has no SES GetAccount, so the worker falls back to `default_send_rate`; 1/s (the
production default, safe for a sandbox account) would make tests crawl.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mailflow.aws.clients import AwsClients
from mailflow.outbound.pipeline import OutboundPipeline
from mailflow.settings import Settings

FAST_OUTBOUND: dict[str, Any] = {"default_send_rate": 500.0}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(outbound=FAST_OUTBOUND)


@pytest.fixture
def handler(aws: AwsClients, provisioned: Settings) -> OutboundPipeline:
    return OutboundPipeline(provisioned, aws)
