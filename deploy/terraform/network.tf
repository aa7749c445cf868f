# Optional VPC endpoints (create_vpc_endpoints): tasks in private subnets without a NAT
# gateway reach every AWS API they use through them.
#
#   interface (PrivateLink, billed per endpoint per AZ-hour + per GB): SQS, SES API
#     ("email"), KMS, ECR api + dkr (image pulls), CloudWatch Logs (the awslogs driver),
#     STS, and aps-workspaces with prometheus_mode = "amp"; private DNS on, so the SDKs'
#     default endpoints resolve to them. One security group admits HTTPS from the
#     workers only.
#   gateway (free, routes in the given route tables): S3 (raw mail, attachments, and
#     ECR's image layers) and DynamoDB.
#
# Not reachable through them: ECR Public (the default ADOT sidecar image, see
# var.adot_image) and anything on the internet. A VPC that already has endpoints keeps
# create_vpc_endpoints = false, or lists only the missing services.

locals {
  interface_endpoint_services = var.create_vpc_endpoints ? toset(distinct(concat(
    var.vpc_endpoint_interface_services,
    local.amp_enabled ? ["aps-workspaces"] : [],
  ))) : toset([])
  gateway_endpoint_services = var.create_vpc_endpoints ? toset(var.vpc_endpoint_gateway_services) : toset([])
  vpc_endpoint_subnet_ids   = var.vpc_endpoint_subnet_ids == null ? var.subnet_ids : var.vpc_endpoint_subnet_ids
}

resource "aws_security_group" "endpoints" {
  count       = length(local.interface_endpoint_services) > 0 ? 1 : 0
  name        = "${local.prefix}endpoints"
  description = "mailflow VPC interface endpoints: HTTPS from the mailflow workers only"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  count                        = length(local.interface_endpoint_services) > 0 ? 1 : 0
  security_group_id            = aws_security_group.endpoints[0].id
  description                  = "HTTPS from the mailflow workers"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.worker.id
}

resource "aws_vpc_endpoint" "interface" {
  for_each            = local.interface_endpoint_services
  vpc_id              = var.vpc_id
  service_name        = "com.amazonaws.${local.region}.${each.value}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = local.vpc_endpoint_subnet_ids
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true
  tags                = merge(local.tags, { Name = "${local.prefix}${each.value}" })
}

resource "aws_vpc_endpoint" "gateway" {
  for_each          = local.gateway_endpoint_services
  vpc_id            = var.vpc_id
  service_name      = "com.amazonaws.${local.region}.${each.value}"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = var.vpc_endpoint_route_table_ids
  tags              = merge(local.tags, { Name = "${local.prefix}${each.value}" })

  lifecycle {
    precondition {
      condition     = length(var.vpc_endpoint_route_table_ids) > 0
      error_message = "Gateway endpoints (${each.value}) need the tasks' route tables: set vpc_endpoint_route_table_ids, or vpc_endpoint_gateway_services = [] if the VPC has them."
    }
  }
}
