# A complete mailflow deployment: two domains, two apps, Cloud Map for a Prometheus
# server in the VPC, alarms to an SNS topic that mails the on-call address.

variable "region" {
  description = "AWS region with SES receiving (e.g. us-east-1, us-west-2, eu-west-1)."
  type        = string
  default     = "us-east-1"
}

variable "vpc_id" {
  description = "VPC for the workers."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (with NAT or VPC endpoints) for the workers."
  type        = list(string)
}

variable "prometheus_cidr" {
  description = "Where your Prometheus server scrapes from."
  type        = string
  default     = "10.0.0.0/16"
}

variable "oncall_email" {
  description = "Address subscribed to the alarm topic (confirm the subscription mail)."
  type        = string
}

variable "image_tag" {
  description = "Worker image tag pushed to the module's ECR repository."
  type        = string
  default     = "0.1.0"
}

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "alarms_key" {
  #checkov:skip=CKV_AWS_109:A key policy's Resource "*" is the key itself; the root statement delegates to IAM.
  #checkov:skip=CKV_AWS_111:Same: key policies always use Resource "*".
  #checkov:skip=CKV_AWS_356:Same: key policies always use Resource "*".
  statement {
    sid       = "AccountAdministersKeyThroughIAM"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "alarms" {
  description         = "mailflow alarm topic"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.alarms_key.json
}

resource "aws_sns_topic" "alarms" {
  name              = "mailflow-prod-alarms"
  kms_master_key_id = aws_kms_key.alarms.arn
}

resource "aws_sns_topic_subscription" "oncall" {
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.oncall_email
}

module "mailflow" {
  source = "../.."

  name    = "mailflow-prod"
  domains = ["example.com", "example.org"]

  # Adding an app is adding a key here.
  apps = {
    support = { aliases = ["help", "contact"] }
    billing = { allowed_senders = ["invoices@example.com"] }
  }

  # Private subnets reaching AWS through a NAT gateway. Without NAT, let the module
  # create VPC endpoints (see docs/deployment.md, "Networking", for the cost of each):
  #   create_vpc_endpoints         = true
  #   vpc_endpoint_route_table_ids = ["rtb-0123456789abcdef0"]
  vpc_id                      = var.vpc_id
  subnet_ids                  = var.private_subnet_ids
  metrics_ingress_cidr_blocks = [var.prometheus_cidr]
  image_tag                   = var.image_tag
  cpu_architecture            = "ARM64"
  min_tasks                   = 1 # 0: scale to zero when idle (first mail waits ~1-3 min)
  max_tasks                   = 10

  # The region's active receipt rule set: the module creates and activates its own,
  # and the plan stops if another set is active. To add the rule to that set instead:
  #   create_receipt_rule_set = false
  #   receipt_rule_set_name   = "default-rule-set"
  # In a region with no active set yet, the first apply needs
  #   replace_active_receipt_rule_set = true

  prometheus_mode = "cloudmap"
  alarm_actions   = [aws_sns_topic.alarms.arn]

  tags = { environment = "prod" }
}
