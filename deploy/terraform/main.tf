data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  prefix     = "${var.name}-"

  tags = merge({ "mailflow:deployment" = var.name, "managed-by" = "terraform" }, var.tags)

  # Every queue the worker touches, keyed by role; the same set as
  # mailflow.settings.Settings.all_queues() (app roles are "app-<name>" here because
  # ':' is awkward in Terraform addresses). Each gets a `<queue>-dlq` redrive queue.
  queues = merge(
    {
      inbound  = "${local.prefix}inbound"
      outbound = "${local.prefix}outbound"
      default  = "${local.prefix}default"
      dlq      = "${local.prefix}dlq"
    },
    { for app in keys(var.apps) : "app-${app}" => "${local.prefix}${app}" },
  )

  # Queue visibility >= the worker's lease and the longest handling time: a task that
  # dies mid-message releases it only after any live handler would have finished.
  queue_visibility_timeout_seconds = max(var.visibility_timeout_seconds, var.max_handling_seconds)
  # SQS's own redrive comes after the worker's attempts: only crash loops reach it.
  max_receive_count = var.max_attempts + var.redrive_headroom
  # Fargate kills the container stopTimeout seconds after SIGTERM; leave room to finish.
  stop_timeout_seconds = min(120, ceil(var.shutdown_grace_seconds) + 10)

  raw_bucket_name         = coalesce(var.raw_bucket_name, "${var.name}-raw-${local.account_id}-${local.region}")
  attachments_bucket_name = coalesce(var.attachments_bucket_name, "${var.name}-attachments-${local.account_id}-${local.region}")
  rule_set_name           = coalesce(var.receipt_rule_set_name, "${var.name}-rules")
  receipt_rule_name       = "${var.name}-store"
  image                   = coalesce(var.container_image, "${aws_ecr_repository.worker.repository_url}:${var.image_tag}")
  configuration_set_name  = "${var.name}-outbound"
  container_name          = "worker"

  # The operator contract (mailflow/settings.py). Names are checked against Settings
  # by tests/deploy/test_terraform.py; worker_environment (the variable) may override.
  worker_environment_base = {
    AWS_REGION                          = local.region
    MAILFLOW_DOMAINS                    = jsonencode(var.domains)
    MAILFLOW_APPS                       = jsonencode(var.apps)
    MAILFLOW_APP_QUEUE_PREFIX           = local.prefix
    MAILFLOW_INBOUND_QUEUE              = local.queues.inbound
    MAILFLOW_OUTBOUND_QUEUE             = local.queues.outbound
    MAILFLOW_DEFAULT_QUEUE              = local.queues.default
    MAILFLOW_DLQ                        = local.queues.dlq
    MAILFLOW_RAW_BUCKET                 = local.raw_bucket_name
    MAILFLOW_ATTACHMENTS_BUCKET         = local.attachments_bucket_name
    MAILFLOW_IDEMPOTENCY_TABLE          = aws_dynamodb_table.idempotency.name
    MAILFLOW_HTTP_PORT                  = tostring(var.http_port)
    MAILFLOW_VISIBILITY_TIMEOUT_SECONDS = tostring(var.visibility_timeout_seconds)
    MAILFLOW_MAX_ATTEMPTS               = tostring(var.max_attempts)
    MAILFLOW_SHUTDOWN_GRACE_SECONDS     = tostring(var.shutdown_grace_seconds)
    MAILFLOW_CONCURRENCY                = tostring(var.concurrency)
    MAILFLOW_LOG_LEVEL                  = var.log_level
    MAILFLOW_LOG_FORMAT                 = "json"
    # Each task takes MaxSendRate * send_rate_fraction / task_count: dividing by the
    # autoscaling ceiling never exceeds the account's rate, whatever the task count.
    MAILFLOW_OUTBOUND__TASK_COUNT = tostring(var.max_tasks)
  }
  worker_environment_optional = {
    MAILFLOW_OUTBOUND__CONFIGURATION_SET = var.create_configuration_set ? local.configuration_set_name : null
  }
  worker_environment = {
    for k, v in merge(local.worker_environment_base, local.worker_environment_optional, var.worker_environment) : k => v if v != null
  }

  sandbox_recipient_identity_arns = [
    for r in var.ses_sandbox_recipients : "arn:${local.partition}:ses:${local.region}:${local.account_id}:identity/${r}"
  ]

  # S3 locations the worker may read outbound attachments from (AppConfig.attachment_sources).
  attachment_source_object_arns = distinct(flatten([
    for app, cfg in var.apps : [
      for src in cfg.attachment_sources : "arn:${local.partition}:s3:::${trimsuffix(src, "/")}/*"
    ]
  ]))
}
