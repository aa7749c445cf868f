# ---------------------------------------------------------------------------------------
# Naming and scope
# ---------------------------------------------------------------------------------------

variable "name" {
  description = "Name of this deployment; prefixes every resource and queue (`<name>-inbound`, `<name>-<app>`, ...). Use one per environment, e.g. `mailflow-prod`."
  type        = string
  default     = "mailflow"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,28}[a-z0-9]$", var.name))
    error_message = "name must be 2-30 characters of lowercase letters, digits and '-', starting with a letter."
  }
}

variable "domains" {
  description = "Mail domains mailflow receives and sends for. Each becomes an SES domain identity with Easy DKIM and a recipient of the receipt rule."
  type        = list(string)

  validation {
    condition     = length(var.domains) > 0 && alltrue([for d in var.domains : can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", d))])
    error_message = "domains must be a non-empty list of lowercase domain names (example.com)."
  }
}

variable "apps" {
  description = <<-EOT
    Applications served by mailflow, keyed by app name. Adding an app is adding a key:
    its queue `<name>-<app>` (+ `-dlq`), the IAM permissions and the worker's
    MAILFLOW_APPS follow. Values are the app's AppConfig (see the README's
    configuration reference): aliases (extra local parts routed to the app),
    allowed_senders (extra From addresses), attachment_sources ("bucket" or
    "bucket/prefix" outbound attachments may be read from; the task role gets
    s3:GetObject on them), and who writes the app's outbound messages: the ARNs of
    the app's IAM roles in this account (producer_role_arns; the module looks up
    their unique ids) and/or principal ids SQS reports as SenderId (producers: AROA...
    role ids, AIDA... user ids, account ids; for writers in other accounts). With
    outbound_writer_identity = "enforce", a message claiming the app from any other
    writer is refused.
  EOT
  type = map(object({
    aliases            = optional(list(string), [])
    allowed_senders    = optional(list(string), [])
    attachment_sources = optional(list(string), [])
    producer_role_arns = optional(list(string), [])
    producers          = optional(list(string), [])
  }))
  default = {}

  validation {
    condition     = alltrue([for app in keys(var.apps) : can(regex("^[a-z0-9][a-z0-9-]{0,62}$", app))])
    error_message = "app names must be lowercase letters, digits and '-' (max 63), as mailflow.settings.APP_NAME_PATTERN."
  }

  validation {
    condition     = alltrue([for app in keys(var.apps) : !contains(["inbound", "outbound", "default", "dlq"], app) && !endswith(app, "-dlq")])
    error_message = "app names inbound, outbound, default, dlq and names ending in -dlq would collide with mailflow's own queues."
  }
}

variable "tags" {
  description = "Tags added to every resource that supports them."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------
# Container and ECS
# ---------------------------------------------------------------------------------------

variable "container_image" {
  description = "Full image reference for the worker. Null uses the module's ECR repository with `image_tag`."
  type        = string
  default     = null
}

variable "image_tag" {
  description = "Tag in the module's ECR repository to run when container_image is null. Tags are immutable: push a new tag per release."
  type        = string
  default     = "0.1.0"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid Docker tag."
  }
}

variable "cpu_architecture" {
  description = "Fargate CPU architecture: ARM64 (Graviton, ~20% cheaper; build the image with --platform linux/arm64) or X86_64."
  type        = string
  default     = "ARM64"

  validation {
    condition     = contains(["ARM64", "X86_64"], var.cpu_architecture)
    error_message = "cpu_architecture must be ARM64 or X86_64."
  }
}

variable "task_cpu" {
  description = "Fargate task CPU units (256 = 0.25 vCPU); task_memory must be a combination Fargate offers for it (checked by a precondition on the task definition)."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.task_cpu)
    error_message = "task_cpu must be one of 256, 512, 1024, 2048, 4096."
  }
}

variable "task_memory" {
  description = "Fargate task memory in MiB; must be a valid combination with task_cpu. It is the task's hard limit (an out-of-memory kill drops every in-flight message back on its queue), so the worker's MAILFLOW_MAX_IN_FLIGHT_BYTES is derived from it. 2048 with 512 CPU units by default: one 39 MB mail raises peak RSS by ~110 MB, and 1024 MiB did not hold 10 inbound + 10 outbound large mails."
  type        = number
  default     = 2048

  validation {
    condition     = var.task_memory >= 512 && var.task_memory <= 30720
    error_message = "task_memory must be between 512 and 30720 MiB."
  }
}

variable "min_tasks" {
  description = "Minimum number of worker tasks (autoscaling floor). 0 scales to zero when the inbound and outbound queues stay empty: a queue alarm starts one task when mail arrives (the first mail after idle waits ~1-3 min for the alarm and the task's start). 1 keeps a task always on."
  type        = number
  default     = 1

  validation {
    condition     = var.min_tasks >= 0 && floor(var.min_tasks) == var.min_tasks
    error_message = "min_tasks must be a whole number >= 0 (0 = scale to zero when idle)."
  }
}

variable "max_tasks" {
  description = "Maximum number of worker tasks (autoscaling ceiling); must be >= min_tasks."
  type        = number
  default     = 10

  validation {
    condition     = var.max_tasks >= 1 && var.max_tasks <= 1000
    error_message = "max_tasks must be between 1 and 1000."
  }
}

variable "scaling_backlog_per_task" {
  description = "Target of the autoscaling policy: visible messages in the inbound plus outbound queues per running task."
  type        = number
  default     = 100

  validation {
    condition     = var.scaling_backlog_per_task > 0
    error_message = "scaling_backlog_per_task must be positive."
  }
}

variable "max_in_flight_bytes" {
  description = "MAILFLOW_MAX_IN_FLIGHT_BYTES override: total size of the emails one task holds at once (it waits before taking more). Null derives it from task_memory: floor((task_memory - 384) * 1048576 / 4), see local.max_in_flight_bytes."
  type        = number
  default     = null

  validation {
    condition     = var.max_in_flight_bytes == null ? true : var.max_in_flight_bytes >= 41943040 && floor(var.max_in_flight_bytes) == var.max_in_flight_bytes
    error_message = "max_in_flight_bytes must be a whole number of bytes >= 41943040 (40 MiB, one email of SES's maximum size), or null to derive it from task_memory."
  }
}

variable "ephemeral_storage_gib" {
  description = "Fargate task storage in GiB (21-200; 20 GiB is Fargate's default when unset, 21 is the smallest value one can set). It holds the image and the worker's spool (/tmp), where in-flight raw mail over 8 MB waits on disk: worst case concurrency x 40 MB x 2 consumers, 8 GB at the maximum concurrency of 100, so 21 GiB is enough unless the image grows past ~10 GiB."
  type        = number
  default     = 21

  validation {
    condition     = var.ephemeral_storage_gib >= 21 && var.ephemeral_storage_gib <= 200 && floor(var.ephemeral_storage_gib) == var.ephemeral_storage_gib
    error_message = "ephemeral_storage_gib must be a whole number between 21 and 200 (Fargate's limits)."
  }
}

variable "vpc_id" {
  description = "VPC the tasks run in (also the VPC of the Cloud Map namespace when prometheus_mode = \"cloudmap\")."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets for the tasks: private subnets with a NAT gateway, or private subnets with VPC endpoints (create_vpc_endpoints), or public subnets with assign_public_ip = true. See docs/deployment.md for the cost of each."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "at least one subnet is required."
  }
}

variable "assign_public_ip" {
  description = "Give tasks a public IP (only for public subnets without NAT; private subnets are recommended)."
  type        = bool
  default     = false
}

variable "metrics_ingress_cidr_blocks" {
  description = "CIDR blocks allowed to scrape the worker's metrics port (e.g. your Prometheus servers). Nothing else may connect in."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.metrics_ingress_cidr_blocks : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "metrics_ingress_cidr_blocks must be valid CIDR blocks and not 0.0.0.0/0."
  }
}

variable "metrics_ingress_security_group_ids" {
  description = "Security groups allowed to scrape the worker's metrics port. May be created in the same apply: the rules are counted by list position, so the ids need not be known at plan time."
  type        = list(string)
  default     = []
}

variable "create_vpc_endpoints" {
  description = "Create VPC endpoints so tasks in private subnets reach AWS without a NAT gateway: interface endpoints (vpc_endpoint_interface_services) with a security group admitting HTTPS from the workers, and gateway endpoints (vpc_endpoint_gateway_services) on vpc_endpoint_route_table_ids. Leave false if the VPC has a NAT gateway or its own endpoints (then trim the lists to the ones it lacks and set true)."
  type        = bool
  default     = false
}

variable "vpc_endpoint_interface_services" {
  description = "Interface endpoints created when create_vpc_endpoints: the suffix of com.amazonaws.<region>.<service>. \"email\" is the SES API (not SMTP); ecr.api + ecr.dkr (+ the s3 gateway for layers) pull the worker image; logs ships the awslogs driver's lines. kms and sts are not called by the worker itself (SQS, S3 and DynamoDB call KMS; Fargate hands out the role's credentials): drop them to save 2 x 7.30 USD per AZ-month. prometheus_mode = \"amp\" adds aps-workspaces."
  type        = list(string)
  default     = ["sqs", "email", "kms", "ecr.api", "ecr.dkr", "logs", "sts"]

  validation {
    condition     = alltrue([for s in var.vpc_endpoint_interface_services : can(regex("^[a-z0-9.-]+$", s))])
    error_message = "vpc_endpoint_interface_services are service suffixes such as sqs, email, ecr.api."
  }
}

variable "vpc_endpoint_gateway_services" {
  description = "Gateway endpoints (free) created when create_vpc_endpoints: s3 (raw mail, attachments and ECR image layers) and dynamodb."
  type        = list(string)
  default     = ["s3", "dynamodb"]

  validation {
    condition     = alltrue([for s in var.vpc_endpoint_gateway_services : contains(["s3", "dynamodb"], s)])
    error_message = "vpc_endpoint_gateway_services may only contain s3 and dynamodb (the services with gateway endpoints)."
  }
}

variable "vpc_endpoint_subnet_ids" {
  description = "Subnets for the interface endpoints' network interfaces, one per Availability Zone (each endpoint costs per AZ-hour). Null uses subnet_ids, which must then hold at most one subnet per AZ."
  type        = list(string)
  default     = null
}

variable "vpc_endpoint_route_table_ids" {
  description = "Route tables of the tasks' subnets, for the S3 and DynamoDB gateway endpoints (required when create_vpc_endpoints and vpc_endpoint_gateway_services is not empty)."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention for the worker's logs."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts."
  }
}

# ---------------------------------------------------------------------------------------
# Worker settings (the operator contract, mailflow/settings.py)
# ---------------------------------------------------------------------------------------

variable "http_port" {
  description = "MAILFLOW_HTTP_PORT: port of /metrics, /healthz and /readyz."
  type        = number
  default     = 8080

  validation {
    condition     = var.http_port >= 1024 && var.http_port <= 65535
    error_message = "http_port must be an unprivileged port (1024-65535): the container runs as a non-root user."
  }
}

variable "visibility_timeout_seconds" {
  description = "MAILFLOW_VISIBILITY_TIMEOUT_SECONDS: the lease the worker takes and heartbeats on each message. Queues get max(this, max_handling_seconds)."
  type        = number
  default     = 60

  validation {
    condition     = var.visibility_timeout_seconds >= 10 && var.visibility_timeout_seconds <= 43200
    error_message = "visibility_timeout_seconds must be between 10 and 43200 (the worker's own bounds)."
  }
}

variable "max_handling_seconds" {
  description = "Longest time one message may take (largest mail, slowest SES call with the SDK's retries). Queue visibility timeouts are at least this, so a task that dies mid-message releases it no earlier."
  type        = number
  default     = 120

  validation {
    condition     = var.max_handling_seconds >= 10 && var.max_handling_seconds <= 43200
    error_message = "max_handling_seconds must be between 10 and 43200."
  }
}

variable "max_attempts" {
  description = "MAILFLOW_MAX_ATTEMPTS: attempts before the worker writes a failure record to the DLQ itself. The SQS redrive maxReceiveCount is this plus redrive_headroom."
  type        = number
  default     = 8

  validation {
    condition     = var.max_attempts >= 1 && var.max_attempts <= 100
    error_message = "max_attempts must be between 1 and 100."
  }
}

variable "redrive_headroom" {
  description = "Extra receives beyond max_attempts before SQS itself moves a message to `<queue>-dlq` (the crash-loop safety net)."
  type        = number
  default     = 5

  validation {
    condition     = var.redrive_headroom >= 1
    error_message = "redrive_headroom must be at least 1, so the worker's own DLQ record always comes first."
  }
}

variable "shutdown_grace_seconds" {
  description = "MAILFLOW_SHUTDOWN_GRACE_SECONDS: drain time after SIGTERM. It must outlast the longest single AWS call, the SES client's 30 s read timeout, or a send cut off at scale-in or deploy ends as send_outcome_unknown. ECS stopTimeout is this + 10 s, and Fargate allows at most 120 s."
  type        = number
  default     = 45

  validation {
    condition     = var.shutdown_grace_seconds > 30 && var.shutdown_grace_seconds + 10 <= 120
    error_message = "shutdown_grace_seconds must be more than 30 (the SES client's read timeout) and at most 110 (stopTimeout = grace + 10 <= 120 on Fargate)."
  }
}

variable "concurrency" {
  description = "MAILFLOW_CONCURRENCY: messages handled at once per consumer per task."
  type        = number
  default     = 10

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 100
    error_message = "concurrency must be between 1 and 100."
  }
}

variable "log_level" {
  description = "MAILFLOW_LOG_LEVEL."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "worker_environment" {
  description = "Extra MAILFLOW_* settings for the worker (e.g. MAILFLOW_INBOUND__MAX_EMAIL_BYTES). They override the module's values; names must be fields of mailflow's Settings."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.worker_environment) : can(regex("^MAILFLOW_[A-Z0-9_]+$", k))])
    error_message = "worker_environment keys must be MAILFLOW_* variable names."
  }
}

# ---------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------

variable "raw_bucket_name" {
  description = "Name of the raw-mail bucket. Null: `<name>-raw-<account>-<region>` (at most 63 characters for any allowed name and region)."
  type        = string
  default     = null

  validation {
    condition     = var.raw_bucket_name == null ? true : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.raw_bucket_name))
    error_message = "raw_bucket_name must be a valid S3 bucket name: 3-63 lowercase letters, digits, '.' and '-'."
  }
}

variable "attachments_bucket_name" {
  description = "Name of the attachments bucket. Null: `<name>-att-<account>-<region>` (at most 63 characters for any allowed name and region)."
  type        = string
  default     = null

  validation {
    condition     = var.attachments_bucket_name == null ? true : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.attachments_bucket_name))
    error_message = "attachments_bucket_name must be a valid S3 bucket name: 3-63 lowercase letters, digits, '.' and '-'."
  }
}

variable "raw_object_prefix" {
  description = "Key prefix SES writes received mail under in the raw bucket."
  type        = string
  default     = "inbound/"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()/-]*/$", var.raw_object_prefix))
    error_message = "raw_object_prefix must end with '/'."
  }
}

variable "raw_mail_expiration_days" {
  description = "Days after which raw received mail is deleted. At least the queues' 14-day message retention, so that any inbound failure record still in a DLQ can be redriven (the worker re-reads the raw mail); the default adds a day for the retries before the record is written."
  type        = number
  default     = 15

  validation {
    condition     = var.raw_mail_expiration_days >= 14
    error_message = "raw_mail_expiration_days must be at least 14: the DLQs keep a failure record 14 days, and redriving an inbound record re-reads its raw mail."
  }
}

variable "attachments_expiration_days" {
  description = "Days after which stored attachments, outbound attachment sources and offloaded payloads are deleted (presigned URLs never outlive this). At least the queues' 14-day message retention, so that a redriven outbound message still finds its attachments."
  type        = number
  default     = 30

  validation {
    condition     = var.attachments_expiration_days >= 14
    error_message = "attachments_expiration_days must be at least 14: the DLQs keep a failure record 14 days, and a redriven outbound message reads its attachments again."
  }
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete non-empty buckets and the ECR repository, and disable the table's deletion protection. For test environments only."
  type        = bool
  default     = false
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the customer managed key is deleted after destroy."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

# ---------------------------------------------------------------------------------------
# SES
# ---------------------------------------------------------------------------------------

variable "create_receipt_rule_set" {
  description = "Create the receipt rule set `receipt_rule_set_name`. false: the set already exists (typically the region's active one) and the module only adds its rule to it."
  type        = bool
  default     = true
}

variable "receipt_rule_set_name" {
  description = "Receipt rule set the module's rule goes in: the set to create (null: `<name>-rules`) or, with create_receipt_rule_set = false, the existing set (required then)."
  type        = string
  default     = null
}

variable "receipt_rule_after" {
  description = "Name of the rule in the set after which the module's rule is placed (null: first). Useful in an existing set."
  type        = string
  default     = null
}

variable "activate_receipt_rule_set" {
  description = "Make the module's rule set the region's active one (only with create_receipt_rule_set). A region has ONE active rule set per account: the plan fails if another set is active, unless replace_active_receipt_rule_set."
  type        = bool
  default     = true
}

variable "replace_active_receipt_rule_set" {
  description = "Activate the module's rule set without checking which set is active now. Needed (1) to replace another active set, which then stops receiving, and (2) in a region where no set is active yet: the provider's aws_ses_active_receipt_rule_set data source fails there with 'empty result'. Once the module's set is active, false passes again."
  type        = bool
  default     = false
}

variable "sns_raw_message_delivery" {
  description = "Deliver SES notifications to the inbound queue without the SNS envelope (the worker accepts both)."
  type        = bool
  default     = true
}

variable "create_configuration_set" {
  description = "Create an SES configuration set (reputation metrics; sending events to an SNS topic and on to the `<name>-ses-events` queue) and make the worker send through it and consume that queue (MAILFLOW_SES_EVENTS_QUEUE)."
  type        = bool
  default     = true
}

variable "ses_event_types" {
  description = "SES sending events published to the `<name>-ses-events` queue through the outbound configuration set's topic. The default carries what the worker needs to settle sends and to count each app's feedback (SEND, REJECT, DELIVERY, BOUNCE, COMPLAINT, DELIVERY_DELAY) and must keep those: without BOUNCE and COMPLAINT the per-app bounce and complaint alarms stay silent. OPEN and CLICK are not accepted here: on this set SES would insert a tracking pixel and rewrite the links of every email, while apps get opens and clicks only for emails that ask for tracking. Tracking is opt-in per email: set ses_tracking, whose set publishes these events plus OPEN and CLICK."
  type        = list(string)
  default     = ["SEND", "REJECT", "DELIVERY", "BOUNCE", "COMPLAINT", "DELIVERY_DELAY", "RENDERING_FAILURE"]

  validation {
    condition     = length(var.ses_event_types) > 0 && alltrue([for t in var.ses_event_types : contains(["SEND", "REJECT", "BOUNCE", "COMPLAINT", "DELIVERY", "OPEN", "CLICK", "RENDERING_FAILURE", "DELIVERY_DELAY", "SUBSCRIPTION"], t)])
    error_message = "ses_event_types must be SES event types (SEND, REJECT, BOUNCE, COMPLAINT, DELIVERY, RENDERING_FAILURE, DELIVERY_DELAY, SUBSCRIPTION)."
  }

  validation {
    condition     = !contains(var.ses_event_types, "OPEN") && !contains(var.ses_event_types, "CLICK")
    error_message = "OPEN and CLICK in ses_event_types would track every email sent (SES adds a tracking pixel and rewrites links), while apps get opens and clicks only for emails that ask for tracking: set ses_tracking = true instead, which adds a second configuration set for those emails."
  }
}

variable "ses_tracking" {
  description = "Create a second configuration set `<name>-tracking` that tracks opens and clicks, publishing ses_event_types plus OPEN and CLICK to the same `<name>-ses-events` queue, and give the worker MAILFLOW_OUTBOUND__TRACKING_CONFIGURATION_SET (needs create_configuration_set). Only emails whose message asks for it (`\"options\": {\"tracking\": true}`) are sent through it, and their apps get email.opened and email.clicked (with the reader's IP address and user agent, and the link followed). The privacy cost, for those emails: SES adds an invisible image and rewrites every link to pass through an AWS redirect, so each open and click tells AWS and the app when, from which IP address and with which mail client the recipient read the mail or followed a link; image blocking and privacy proxies (e.g. Apple Mail Privacy Protection) make opens unreliable. Off: `tracking` is ignored and emails are sent untracked."
  type        = bool
  default     = false
}

variable "ses_tracking_redirect_domain" {
  description = "Custom redirect domain (e.g. track.example.com) for the tracking set's links and image, instead of SES's own tracking domain (only with ses_tracking). AWS requires it to be a domain verified in SES in this account, with a CNAME to the region's SES tracking domain; HTTPS links on it need your own CloudFront distribution with a certificate in front of it (the module creates neither). Null: SES's domain."
  type        = string
  default     = null

  validation {
    condition     = var.ses_tracking_redirect_domain == null || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.ses_tracking_redirect_domain))
    error_message = "ses_tracking_redirect_domain must be a lowercase domain name (track.example.com) or null."
  }
}

variable "ses_sandbox_recipients" {
  description = "While the account is in the SES sandbox, SES also authorizes a send against each (verified) recipient identity: list those test addresses here so the task role may send to them. Empty once out of the sandbox."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for r in var.ses_sandbox_recipients : can(regex("^[^@\\s]+@[^@\\s]+$", r)) || can(regex("^[a-z0-9.-]+\\.[a-z]{2,}$", r))])
    error_message = "ses_sandbox_recipients must be email addresses or domains."
  }
}

variable "mail_from_subdomain" {
  description = "Custom MAIL FROM subdomain (bounce.example.com) so SPF aligns for DMARC. Null disables it."
  type        = string
  default     = "bounce"
}

# ---------------------------------------------------------------------------------------
# Alarms
# ---------------------------------------------------------------------------------------

variable "alarm_actions" {
  description = "SNS topic ARNs notified when an alarm fires or recovers."
  type        = list(string)
  default     = []
}

variable "oldest_message_age_alarm_seconds" {
  description = "Alarm when the oldest message in a queue is older than this."
  type        = number
  default     = 900
}

variable "bounce_rate_alarm_threshold" {
  description = "Alarm when SES's account bounce rate exceeds this fraction (AWS reviews accounts at 5%, pauses at 10%)."
  type        = number
  default     = 0.04

  validation {
    condition     = var.bounce_rate_alarm_threshold > 0 && var.bounce_rate_alarm_threshold < 1
    error_message = "bounce_rate_alarm_threshold is a fraction between 0 and 1."
  }
}

variable "complaint_rate_alarm_threshold" {
  description = "Alarm when SES's account complaint rate exceeds this fraction (AWS reviews accounts at 0.1%, pauses at 0.5%)."
  type        = number
  default     = 0.0008

  validation {
    condition     = var.complaint_rate_alarm_threshold > 0 && var.complaint_rate_alarm_threshold < 1
    error_message = "complaint_rate_alarm_threshold is a fraction between 0 and 1."
  }
}

variable "app_bounce_rate_alarm_threshold" {
  description = "Alarm `<name>-<app>-bounce-rate` when an app's permanent bounces exceed this fraction of its sent emails over app_feedback_alarm_period_seconds (AWS reviews an account at 5%, pauses around 10%). Counted per email from the worker's log lines; deploy/prometheus/mailflow-rules.yml uses the same default."
  type        = number
  default     = 0.05

  validation {
    condition     = var.app_bounce_rate_alarm_threshold > 0 && var.app_bounce_rate_alarm_threshold < 1
    error_message = "app_bounce_rate_alarm_threshold is a fraction between 0 and 1."
  }
}

variable "app_complaint_rate_alarm_threshold" {
  description = "Alarm `<name>-<app>-complaint-rate` when an app's complaints exceed this fraction of its sent emails over app_feedback_alarm_period_seconds (AWS reviews an account at 0.1%, pauses around 0.5%). deploy/prometheus/mailflow-rules.yml uses the same default."
  type        = number
  default     = 0.001

  validation {
    condition     = var.app_complaint_rate_alarm_threshold > 0 && var.app_complaint_rate_alarm_threshold < 1
    error_message = "app_complaint_rate_alarm_threshold is a fraction between 0 and 1."
  }
}

variable "app_bounce_rate_alarm_min_sent" {
  description = "Volume guard of the per-app bounce-rate alarm: below this many emails sent by the app in the period its rate counts as 0, so 1 bounce of 2 mails does not page (the account-level alarms still watch the sum)."
  type        = number
  default     = 100

  validation {
    condition     = var.app_bounce_rate_alarm_min_sent >= 1 && floor(var.app_bounce_rate_alarm_min_sent) == var.app_bounce_rate_alarm_min_sent
    error_message = "app_bounce_rate_alarm_min_sent must be a whole number >= 1."
  }
}

variable "app_complaint_rate_alarm_min_sent" {
  description = "Volume guard of the per-app complaint-rate alarm: below this many emails sent by the app in the period its rate counts as 0. The default 1000 is 1 / app_complaint_rate_alarm_threshold: a single complaint never pages on its own."
  type        = number
  default     = 1000

  validation {
    condition     = var.app_complaint_rate_alarm_min_sent >= 1 && floor(var.app_complaint_rate_alarm_min_sent) == var.app_complaint_rate_alarm_min_sent
    error_message = "app_complaint_rate_alarm_min_sent must be a whole number >= 1."
  }
}

variable "app_feedback_alarm_period_seconds" {
  description = "Window of the per-app bounce and complaint rates: bounces (complaints) counted in it divided by emails sent in it. Longer windows let low-volume apps reach the volume guards; bounces arrive minutes after the send, complaints hours or days."
  type        = number
  default     = 3600

  validation {
    condition     = var.app_feedback_alarm_period_seconds >= 300 && var.app_feedback_alarm_period_seconds <= 86400 && var.app_feedback_alarm_period_seconds % 60 == 0
    error_message = "app_feedback_alarm_period_seconds must be a multiple of 60 between 300 and 86400 (a CloudWatch alarm evaluates at most one day)."
  }
}

# ---------------------------------------------------------------------------------------
# Prometheus
# ---------------------------------------------------------------------------------------

variable "prometheus_mode" {
  description = <<-EOT
    How Prometheus reaches the workers' /metrics:
    "cloudmap" - register tasks in a Cloud Map private DNS namespace (SRV records) for a
                 Prometheus server in the VPC (dns_sd_configs; see the scrape config output);
    "amp"      - an ADOT collector sidecar scrapes localhost and remote-writes to Amazon
                 Managed Service for Prometheus (a workspace is created unless amp_workspace_arn);
    "none"     - neither (scrape task IPs yourself, e.g. with ECS service discovery).
  EOT
  type        = string
  default     = "cloudmap"

  validation {
    condition     = contains(["cloudmap", "amp", "none"], var.prometheus_mode)
    error_message = "prometheus_mode must be cloudmap, amp or none."
  }
}

variable "cloudmap_namespace_id" {
  description = "Existing Cloud Map private DNS namespace to register in. Null creates `cloudmap_namespace_name` in vpc_id."
  type        = string
  default     = null
}

variable "cloudmap_namespace_name" {
  description = "Name of the private DNS namespace created when cloudmap_namespace_id is null."
  type        = string
  default     = "mailflow.internal"
}

variable "amp_workspace_arn" {
  description = "Existing Amazon Managed Prometheus workspace ARN for prometheus_mode = \"amp\". Null creates one."
  type        = string
  default     = null
}

variable "adot_image" {
  description = "AWS Distro for OpenTelemetry collector image for the sidecar (prometheus_mode = \"amp\"). The default is on ECR Public, which tasks reach only through a NAT gateway or a public IP (ECR Public is not served by the ecr.api/ecr.dkr VPC endpoints): with endpoints only, copy it into a private ECR repository (e.g. the module's, as tag adot-<version>) and set this to that reference."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
}

variable "outbound_writer_identity" {
  description = <<-EOT
    MAILFLOW_OUTBOUND__WRITER_IDENTITY. "enforce": an outbound message is sent only when
    SQS's SenderId (who wrote it) is one of the claimed app's producers, the worker's
    own task role (it re-sends deferred messages) or an operator_role_arns role (redrive).
    "off" believes the message's `source`: only where one party writes for every app.
  EOT
  type        = string
  default     = "enforce"

  validation {
    condition     = contains(["enforce", "off"], var.outbound_writer_identity)
    error_message = "outbound_writer_identity must be enforce or off."
  }
}

variable "operator_role_arns" {
  description = "IAM roles (this account) whose sessions may write outbound messages for any app: the role operators run `mailflow redrive` with."
  type        = list(string)
  default     = []
}
