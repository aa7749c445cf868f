data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

# The unique ids (AROA...) SQS reports as SenderId for the roles that write outbound mail.
data "aws_iam_role" "producer" {
  for_each = local.producer_role_names
  name     = each.value
}

data "aws_iam_role" "operator" {
  for_each = local.operator_role_names
  name     = each.value
}

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
  # The grace itself outlasts the SES client's 30 s read timeout (variable validation),
  # and grace + 10 <= 120 (Fargate's maximum stopTimeout), so min() never cuts it.
  stop_timeout_seconds = min(120, ceil(var.shutdown_grace_seconds) + 10)

  # Every queue keeps a message 14 days (SQS's maximum), DLQs included. Buckets whose
  # objects a redriven failure record needs (raw mail for inbound, attachments for
  # outbound) keep them at least as long (variable validations + precondition in s3.tf).
  message_retention_seconds = 1209600
  message_retention_days    = ceil(local.message_retention_seconds / 86400)

  # The worker's byte budget (MAILFLOW_MAX_IN_FLIGHT_BYTES): the total size of the
  # emails one task holds at once. Measured: handling an email costs about 3x its size
  # in RSS (a 39 MB mail raised peak RSS by ~110 MB); dividing by 4 leaves a quarter of
  # the rest as headroom, after 384 MiB for the interpreter, libraries, clients and
  # buffers. 2048 MiB -> 416 MiB of mail at once, so no mix of large mails reaches the
  # task's hard limit (an OOM kill would drop every in-flight message back on its queue).
  max_in_flight_bytes_derived = floor((var.task_memory - 384) * 1048576 / 4)
  max_in_flight_bytes         = coalesce(var.max_in_flight_bytes, local.max_in_flight_bytes_derived)

  # Fargate's task CPU/memory combinations (MiB) for the task_cpu values allowed.
  fargate_memory_options = {
    "256"  = tolist([512, 1024, 2048])
    "512"  = range(1024, 4097, 1024)
    "1024" = range(2048, 8193, 1024)
    "2048" = range(4096, 16385, 1024)
    "4096" = range(8192, 30721, 1024)
  }

  # Generated bucket names stay within S3's 63 characters for any allowed `name`
  # (30 characters), the 12-digit account and the longest region name (15, e.g.
  # us-isof-south-1): 30 + 5 + 12 + 1 + 15 = 63. A precondition in s3.tf checks the
  # actual names, given ones included.
  raw_bucket_name         = coalesce(var.raw_bucket_name, "${var.name}-raw-${local.account_id}-${local.region}")
  attachments_bucket_name = coalesce(var.attachments_bucket_name, "${var.name}-att-${local.account_id}-${local.region}")

  # The module's receipt rule lives in its own set or in an existing one
  # (create_receipt_rule_set = false); everything that names the rule (the raw bucket's
  # and the inbound topic's aws:SourceArn) uses these, so they match wherever it lives.
  rule_set_name     = coalesce(var.receipt_rule_set_name, "${var.name}-rules")
  receipt_rule_name = "${var.name}-store"
  receipt_rule_arn  = "arn:${local.partition}:ses:${local.region}:${local.account_id}:receipt-rule-set/${local.rule_set_name}:receipt-rule/${local.receipt_rule_name}"
  # Activation is checked against the region's active set unless the caller opts in.
  activate_rule_set     = var.create_receipt_rule_set && var.activate_receipt_rule_set
  check_active_rule_set = local.activate_rule_set && !var.replace_active_receipt_rule_set

  # IAM names are global to the account: the region keeps two deployments of the same
  # name in two regions apart (64 characters at most: 30 + 11 + 15 = 56).
  task_role_name      = "${local.prefix}task-${local.region}"
  execution_role_name = "${local.prefix}execution-${local.region}"

  image                  = coalesce(var.container_image, "${aws_ecr_repository.worker.repository_url}:${var.image_tag}")
  configuration_set_name = "${var.name}-outbound"
  container_name         = "worker"
  ses_events_queue_name  = "${local.prefix}ses-events"

  # SES configuration sets by role, created alike (ses.tf): "outbound", which every email
  # is sent through and which does not track, and with ses_tracking "tracking", for the
  # emails that ask for it (options.tracking). The tracking set publishes to the same
  # events topic and queue, so it needs create_configuration_set (precondition in ecs.tf).
  tracking_configuration_set_name = "${var.name}-tracking"
  ses_tracking                    = var.create_configuration_set && var.ses_tracking
  configuration_sets = merge(
    var.create_configuration_set ? { outbound = local.configuration_set_name } : {},
    local.ses_tracking ? { tracking = local.tracking_configuration_set_name } : {},
  )
  # The tracking set publishes what the outbound set does, plus opens and clicks.
  tracking_event_types = distinct(concat(var.ses_event_types, ["OPEN", "CLICK"]))

  # The operator contract (mailflow/settings.py). Names are checked against Settings
  # by tests/deploy/test_terraform.py; worker_environment (the variable) may override.
  worker_environment_base = {
    AWS_REGION                          = local.region
    MAILFLOW_DOMAINS                    = jsonencode(var.domains)
    MAILFLOW_APPS                       = jsonencode(local.worker_apps)
    MAILFLOW_APP_QUEUE_PREFIX           = local.prefix
    MAILFLOW_INBOUND_QUEUE              = local.queues.inbound
    MAILFLOW_OUTBOUND_QUEUE             = local.queues.outbound
    MAILFLOW_DEFAULT_QUEUE              = local.queues.default
    MAILFLOW_DLQ                        = local.queues.dlq
    MAILFLOW_RAW_BUCKET                 = local.raw_bucket_name
    MAILFLOW_INBOUND__RAW_KEY_PREFIX    = var.raw_object_prefix
    MAILFLOW_ATTACHMENTS_BUCKET         = local.attachments_bucket_name
    MAILFLOW_IDEMPOTENCY_TABLE          = aws_dynamodb_table.idempotency.name
    MAILFLOW_HTTP_PORT                  = tostring(var.http_port)
    MAILFLOW_VISIBILITY_TIMEOUT_SECONDS = tostring(var.visibility_timeout_seconds)
    MAILFLOW_MAX_ATTEMPTS               = tostring(var.max_attempts)
    MAILFLOW_SHUTDOWN_GRACE_SECONDS     = tostring(var.shutdown_grace_seconds)
    MAILFLOW_CONCURRENCY                = tostring(var.concurrency)
    MAILFLOW_MAX_IN_FLIGHT_BYTES        = tostring(local.max_in_flight_bytes)
    MAILFLOW_LOG_LEVEL                  = var.log_level
    MAILFLOW_LOG_FORMAT                 = "json"
    # No MAILFLOW_OUTBOUND__TASK_COUNT: the running tasks count themselves through a
    # roster in the table and share the SES rate (one task alone uses all of it).
    MAILFLOW_OUTBOUND__WRITER_IDENTITY = var.outbound_writer_identity
    MAILFLOW_OUTBOUND__TRUSTED_WRITERS = jsonencode(local.trusted_writers)
  }
  worker_environment_optional = {
    MAILFLOW_OUTBOUND__CONFIGURATION_SET = var.create_configuration_set ? local.configuration_set_name : null
    # The worker's third consumer reads <name>-ses-events: SES Send, Delivery, Bounce and
    # Reject events settle sends whose outcome was unknown, and later bounces and
    # complaints arrive there too. Without a configuration set there is no queue and no
    # events consumer (the null is dropped below, so the variable is unset).
    MAILFLOW_SES_EVENTS_QUEUE = var.create_configuration_set ? local.ses_events_queue_name : null
    # Emails with options.tracking go through the tracking set; unset, they are sent
    # untracked through the outbound set and no opens or clicks reach apps.
    MAILFLOW_OUTBOUND__TRACKING_CONFIGURATION_SET = local.ses_tracking ? local.tracking_configuration_set_name : null
  }
  worker_environment = {
    for k, v in merge(local.worker_environment_base, local.worker_environment_optional, var.worker_environment) : k => v if v != null
  }

  sandbox_recipient_identity_arns = [
    for r in var.ses_sandbox_recipients : "arn:${local.partition}:ses:${local.region}:${local.account_id}:identity/${r}"
  ]

  # Who may write each app's outbound messages, as SQS's SenderId names them: role
  # unique ids (looked up from the ARNs) and ids given as they are.
  producer_role_names = toset(flatten([
    for app, cfg in var.apps : [for arn in cfg.producer_role_arns : reverse(split("/", arn))[0]]
  ]))
  operator_role_names = toset([for arn in var.operator_role_arns : reverse(split("/", arn))[0]])
  worker_apps = {
    for app, cfg in var.apps : app => {
      aliases            = cfg.aliases
      allowed_senders    = cfg.allowed_senders
      attachment_sources = cfg.attachment_sources
      producers = concat(
        [for arn in cfg.producer_role_arns : data.aws_iam_role.producer[reverse(split("/", arn))[0]].unique_id],
        cfg.producers,
      )
    }
  }
  trusted_writers = concat(
    [aws_iam_role.task.unique_id],
    [for name in local.operator_role_names : data.aws_iam_role.operator[name].unique_id],
  )

  # S3 locations the worker may read outbound attachments from (AppConfig.attachment_sources).
  attachment_source_object_arns = distinct(flatten([
    for app, cfg in var.apps : [
      for src in cfg.attachment_sources : "arn:${local.partition}:s3:::${trimsuffix(src, "/")}/*"
    ]
  ]))
}
