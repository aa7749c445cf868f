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
    s3:GetObject on them).
  EOT
  type = map(object({
    aliases            = optional(list(string), [])
    allowed_senders    = optional(list(string), [])
    attachment_sources = optional(list(string), [])
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
  description = "Fargate task CPU units (256 = 0.25 vCPU)."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.task_cpu)
    error_message = "task_cpu must be one of 256, 512, 1024, 2048, 4096."
  }
}

variable "task_memory" {
  description = "Fargate task memory in MiB; must be a valid combination with task_cpu."
  type        = number
  default     = 1024

  validation {
    condition     = var.task_memory >= 512 && var.task_memory <= 30720
    error_message = "task_memory must be between 512 and 30720 MiB."
  }
}

variable "min_tasks" {
  description = "Minimum number of worker tasks (autoscaling floor; at least 1 so mail keeps flowing)."
  type        = number
  default     = 1

  validation {
    condition     = var.min_tasks >= 1
    error_message = "min_tasks must be at least 1."
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

variable "vpc_id" {
  description = "VPC the tasks run in (also the VPC of the Cloud Map namespace when prometheus_mode = \"cloudmap\")."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets for the tasks. Private subnets with a NAT gateway or VPC endpoints for SQS, S3, SES, DynamoDB, ECR, CloudWatch Logs (and APS)."
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
  description = "Security groups allowed to scrape the worker's metrics port."
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
  description = "MAILFLOW_SHUTDOWN_GRACE_SECONDS: drain time after SIGTERM. ECS stopTimeout is this + 10 s (Fargate allows up to 120 s)."
  type        = number
  default     = 25

  validation {
    condition     = var.shutdown_grace_seconds >= 0 && var.shutdown_grace_seconds <= 110
    error_message = "shutdown_grace_seconds must be between 0 and 110 (stopTimeout = grace + 10 <= 120 on Fargate)."
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
  description = "Name of the raw-mail bucket. Null: `<name>-raw-<account>-<region>`."
  type        = string
  default     = null
}

variable "attachments_bucket_name" {
  description = "Name of the attachments bucket. Null: `<name>-attachments-<account>-<region>`."
  type        = string
  default     = null
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
  description = "Days after which raw received mail is deleted."
  type        = number
  default     = 7

  validation {
    condition     = var.raw_mail_expiration_days >= 1
    error_message = "raw_mail_expiration_days must be at least 1."
  }
}

variable "attachments_expiration_days" {
  description = "Days after which stored attachments are deleted (presigned URLs never outlive this)."
  type        = number
  default     = 30

  validation {
    condition     = var.attachments_expiration_days >= 1
    error_message = "attachments_expiration_days must be at least 1."
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

variable "receipt_rule_set_name" {
  description = "Name of the SES receipt rule set to create. Null: `<name>-rules`."
  type        = string
  default     = null
}

variable "activate_receipt_rule_set" {
  description = "Make the module's receipt rule set the active one. A region has ONE active rule set per account: set false if another one is active and add the rule there yourself."
  type        = bool
  default     = true
}

variable "sns_raw_message_delivery" {
  description = "Deliver SES notifications to the inbound queue without the SNS envelope (the worker accepts both)."
  type        = bool
  default     = true
}

variable "create_configuration_set" {
  description = "Create an SES configuration set (reputation metrics, bounce/complaint events to an SNS topic) and make the worker send through it."
  type        = bool
  default     = true
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
  description = "AWS Distro for OpenTelemetry collector image for the sidecar (prometheus_mode = \"amp\")."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
}
