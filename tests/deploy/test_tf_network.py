"""Optional VPC endpoints: private subnets reach every AWS API the tasks use without NAT.

Interface endpoints for SQS, the SES API (`email`), KMS, ECR (api and dkr), CloudWatch
Logs and STS behind a security group that admits HTTPS from the workers only; gateway
endpoints for S3 and DynamoDB; all off by default, and trimmable where the VPC has its
own. The ADOT sidecar's default image (ECR Public) is not reachable through them: the
variable's description and the deployment guide say so.
"""

from __future__ import annotations

import pytest

from tests.deploy.hcl import ROOT, Module, expr, load_module

INTERFACE = {"sqs", "email", "kms", "ecr.api", "ecr.dkr", "logs", "sts"}
GATEWAY = {"s3", "dynamodb"}


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def test_endpoints_are_opt_in_with_the_full_set_by_default(module: Module) -> None:
    assert module.variables["create_vpc_endpoints"]["default"] is False
    assert set(module.variables["vpc_endpoint_interface_services"]["default"]) == INTERFACE
    assert set(module.variables["vpc_endpoint_gateway_services"]["default"]) == GATEWAY
    locals_ = module.locals
    for name in ("interface_endpoint_services", "gateway_endpoint_services"):
        assert expr(locals_[name]).startswith("var.create_vpc_endpoints ?"), name
        assert expr(locals_[name]).endswith(": toset([])"), name
    # amp mode needs the remote-write endpoint too.
    assert "aps-workspaces" in expr(locals_["interface_endpoint_services"])
    (gateway_rule,) = module.variables["vpc_endpoint_gateway_services"]["validation"]
    assert 'contains(["s3", "dynamodb"], s)' in gateway_rule["condition"].replace('\\"', '"')


def test_interface_endpoints_resolve_privately_behind_their_own_group(module: Module) -> None:
    endpoint = module.resource("aws_vpc_endpoint", "interface")
    assert endpoint["for_each"] == "${local.interface_endpoint_services}"
    assert endpoint["vpc_endpoint_type"] == "Interface"
    assert endpoint["service_name"] == "com.amazonaws.${local.region}.${each.value}"
    assert endpoint["private_dns_enabled"] is True
    assert endpoint["security_group_ids"] == ["${aws_security_group.endpoints[0].id}"]
    assert endpoint["subnet_ids"] == "${local.vpc_endpoint_subnet_ids}"
    group = module.resource("aws_security_group", "endpoints")
    assert group["vpc_id"] == "${var.vpc_id}"
    assert "ingress" not in group
    rule = module.resource("aws_vpc_security_group_ingress_rule", "endpoints_https")
    assert (rule["from_port"], rule["to_port"], rule["ip_protocol"]) == (443, 443, "tcp")
    assert rule["referenced_security_group_id"] == "${aws_security_group.worker.id}"
    assert "cidr_ipv4" not in rule


def test_gateway_endpoints_route_s3_and_dynamodb(module: Module) -> None:
    endpoint = module.resource("aws_vpc_endpoint", "gateway")
    assert endpoint["for_each"] == "${local.gateway_endpoint_services}"
    assert endpoint["vpc_endpoint_type"] == "Gateway"
    assert endpoint["route_table_ids"] == "${var.vpc_endpoint_route_table_ids}"
    (precondition,) = [p for b in endpoint["lifecycle"] for p in b["precondition"]]
    assert expr(precondition["condition"]) == "length(var.vpc_endpoint_route_table_ids) > 0"


def test_the_workers_egress_reaches_the_endpoints(module: Module) -> None:
    egress = module.resource("aws_vpc_security_group_egress_rule", "https")
    assert egress["security_group_id"] == "${aws_security_group.worker.id}"
    assert (egress["from_port"], egress["to_port"]) == (443, 443)


def test_where_the_sidecar_image_comes_from_is_documented(module: Module) -> None:
    description = module.variables["adot_image"]["description"]
    assert module.variables["adot_image"]["default"].startswith("public.ecr.aws/")
    for words in ("NAT", "public IP", "ECR Public", "private ECR"):
        assert words in description, words
    guide = (ROOT / "docs" / "deployment.md").read_text()
    assert "public.ecr.aws" in guide
    assert "create_vpc_endpoints" in guide
