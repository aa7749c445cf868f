# CloudWatch alarms: messages that failed (from the worker's log lines), SQS redrive
# DLQs not empty (crash loops), oldest message too old, no running task, SES bounce and
# complaint rates for the account and, from the worker's log lines, per app. Actions go
# to var.alarm_actions.
#
# Not alarmed: the depth of MAILFLOW_DLQ (the worker's failure-record queue). It also
# receives policy rejections (virus, blocked attachment, unknown app, invalid outbound
# JSON), which are normal operation; the worker logs one line per permanent fate, and
# the metric filters below tell failures from rejections.

locals {
  # Every SQS redrive DLQ: only messages the worker could not judge at all reach them.
  dead_letter_queues = merge(
    { for role, q in aws_sqs_queue.dlq : "${role}-dlq" => q.name },
    { for q in aws_sqs_queue.ses_events_dlq : "ses-events-dlq" => q.name },
  )
  metrics_namespace = "mailflow/${var.name}"
  # Queues that should be drained continuously (by the worker or by an app).
  flowing_queues = { for role, q in aws_sqs_queue.this : role => q.name if role != "dlq" }
}

resource "aws_cloudwatch_metric_alarm" "dlq_not_empty" {
  for_each            = local.dead_letter_queues
  alarm_name          = "${each.value}-not-empty"
  alarm_description   = "Messages are waiting in ${each.value}: SQS moved them there after ${local.max_receive_count} receives, so the worker crashed or hung on them. Inspect with `mailflow peek`, fix, then move them back with SQS's DLQ redrive."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
}

# One log line per permanent fate (JSON through the awslogs driver):
#   {"event": "message.failed", "direction": ..., "error_code": ..., "level": "error"}
#     a real failure: retries exhausted, an unexpected error, an AWS error;
#   {"event": "message.rejected", "level": "warning", ...}
#     a policy or validation rejection: virus, blocked attachment, unknown app, invalid
#     outbound JSON. Counted, never paged on.
resource "aws_cloudwatch_log_metric_filter" "messages_failed" {
  name           = "${local.prefix}messages-failed"
  log_group_name = aws_cloudwatch_log_group.worker.name
  pattern        = "{ $.event = \"message.failed\" }"

  metric_transformation {
    name      = "MessagesFailed"
    namespace = local.metrics_namespace
    value     = "1"
    unit      = "Count"
  }
}

resource "aws_cloudwatch_log_metric_filter" "messages_rejected" {
  name           = "${local.prefix}messages-rejected"
  log_group_name = aws_cloudwatch_log_group.worker.name
  pattern        = "{ $.event = \"message.rejected\" }"

  metric_transformation {
    name      = "MessagesRejected"
    namespace = local.metrics_namespace
    value     = "1"
    unit      = "Count"
  }
}

resource "aws_cloudwatch_metric_alarm" "messages_failed" {
  alarm_name          = "${local.prefix}messages-failed"
  alarm_description   = "The worker gave up on a message (retries exhausted or an unexpected/AWS error): its failure record is in ${aws_sqs_queue.this["dlq"].name}. Read the message.failed log lines (error_code), fix the cause, then `mailflow redrive`. Policy rejections do not count here."
  namespace           = local.metrics_namespace
  metric_name         = aws_cloudwatch_log_metric_filter.messages_failed.metric_transformation[0].name
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "oldest_message_age" {
  for_each            = local.flowing_queues
  alarm_name          = "${each.value}-oldest-message-age"
  alarm_description   = "The oldest message in ${each.value} is older than ${var.oldest_message_age_alarm_seconds} s: its consumer is stuck, failing or too slow."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.oldest_message_age_alarm_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
}

# With min_tasks = 0 no task is the idle state; a wake-up that fails shows as the
# oldest-message-age alarm instead.
resource "aws_cloudwatch_metric_alarm" "no_running_tasks" {
  count               = var.min_tasks > 0 ? 1 : 0
  alarm_name          = "${local.prefix}no-running-tasks"
  alarm_description   = "No mailflow worker task is running: neither inbound nor outbound mail is processed."
  namespace           = "ECS/ContainerInsights"
  metric_name         = "RunningTaskCount"
  dimensions          = { ClusterName = aws_ecs_cluster.this.name, ServiceName = aws_ecs_service.worker.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  # No data from Container Insights means no task reported: that is the outage.
  treat_missing_data = "breaching"
  alarm_actions      = var.alarm_actions
  ok_actions         = var.alarm_actions
  tags               = local.tags
}

resource "aws_cloudwatch_metric_alarm" "ses_bounce_rate" {
  alarm_name          = "${local.prefix}ses-bounce-rate"
  alarm_description   = "SES account bounce rate above ${var.bounce_rate_alarm_threshold * 100}% (AWS reviews at 5%)."
  namespace           = "AWS/SES"
  metric_name         = "Reputation.BounceRate"
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.bounce_rate_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "ses_complaint_rate" {
  alarm_name          = "${local.prefix}ses-complaint-rate"
  alarm_description   = "SES account complaint rate above ${var.complaint_rate_alarm_threshold * 100}% (AWS reviews at 0.1%)."
  namespace           = "AWS/SES"
  metric_name         = "Reputation.ComplaintRate"
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.complaint_rate_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
}

# --- per-app bounce and complaint rates ---------------------------------------------------
# SES's Reputation.* metrics above are account-wide: they say the account is in danger,
# not which app put it there. The worker logs one JSON line per email SES accepted and
# per bounce or complaint event SES reports back through `<name>-ses-events`:
#   {"event": "outbound.sent", "app": ..., ...}
#   {"event": "feedback.bounced", "app": ..., "bounce_type": "Permanent"|"Transient"|"Undetermined", "recipients": n, ...}
#   {"event": "feedback.complained", "app": ..., "recipients": n, ...}
# Each metric filter counts one kind of line (1 per email or event, as the worker's
# Prometheus counters do) with the line's `app` as a dimension: three filters serve any
# number of apps (a log group takes at most 100 filters; one filter per app and kind
# would run out at about 30 apps) and adding an app changes no filter, only adds its
# alarms. The worker logs these lines only for apps it knows (var.apps' keys), far
# below the 1000 dimension values per hour at which CloudWatch Logs disables a filter.
# A filter with dimensions can have no default value (the provider: "conflicts with
# dimensions"), so the alarms below FILL the gaps with 0.

resource "aws_cloudwatch_log_metric_filter" "outbound_sent" {
  name           = "${local.prefix}outbound-sent"
  log_group_name = aws_cloudwatch_log_group.worker.name
  pattern        = "{ $.event = \"outbound.sent\" }"

  metric_transformation {
    name       = "OutboundSent"
    namespace  = local.metrics_namespace
    value      = "1"
    unit       = "Count"
    dimensions = { app = "$.app" }
  }
}

# bounce_type is a dimension too: the alarm watches Permanent (what SES's bounce rate
# counts), Transient and Undetermined stay visible per app in the console.
resource "aws_cloudwatch_log_metric_filter" "feedback_bounced" {
  name           = "${local.prefix}feedback-bounced"
  log_group_name = aws_cloudwatch_log_group.worker.name
  pattern        = "{ $.event = \"feedback.bounced\" }"

  metric_transformation {
    name       = "FeedbackBounces"
    namespace  = local.metrics_namespace
    value      = "1"
    unit       = "Count"
    dimensions = { app = "$.app", bounce_type = "$.bounce_type" }
  }
}

resource "aws_cloudwatch_log_metric_filter" "feedback_complained" {
  name           = "${local.prefix}feedback-complained"
  log_group_name = aws_cloudwatch_log_group.worker.name
  pattern        = "{ $.event = \"feedback.complained\" }"

  metric_transformation {
    name       = "FeedbackComplaints"
    namespace  = local.metrics_namespace
    value      = "1"
    unit       = "Count"
    dimensions = { app = "$.app" }
  }
}

# rate = events / sent over the period, 0 below the volume guard (1 bounce of 2 mails
# pages nobody); no log line at all in the period is missing data, not breaching.
resource "aws_cloudwatch_metric_alarm" "app_bounce_rate" {
  for_each            = var.apps
  alarm_name          = "${local.prefix}${each.key}-bounce-rate"
  alarm_description   = "App ${each.key} endangers the SES account: more than ${var.app_bounce_rate_alarm_threshold * 100}% of the emails it sent in ${var.app_feedback_alarm_period_seconds / 60} min bounced permanently (counted from ${var.app_bounce_rate_alarm_min_sent} sent; AWS reviews an account at 5%, pauses around 10%). Read its feedback.bounced log lines in ${aws_cloudwatch_log_group.worker.name} (app = ${each.key}); if its list is bad, pause the app's sending (revoke its write to the outbound queue) until it is cleaned."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.app_bounce_rate_alarm_threshold
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags

  metric_query {
    id          = "sent"
    return_data = false
    metric {
      namespace   = local.metrics_namespace
      metric_name = aws_cloudwatch_log_metric_filter.outbound_sent.metric_transformation[0].name
      dimensions  = { app = each.key }
      period      = var.app_feedback_alarm_period_seconds
      stat        = "Sum"
    }
  }

  metric_query {
    id          = "bounces"
    return_data = false
    metric {
      namespace   = local.metrics_namespace
      metric_name = aws_cloudwatch_log_metric_filter.feedback_bounced.metric_transformation[0].name
      dimensions  = { app = each.key, bounce_type = "Permanent" }
      period      = var.app_feedback_alarm_period_seconds
      stat        = "Sum"
    }
  }

  metric_query {
    id          = "rate"
    label       = "${each.key}: permanent bounces / sent"
    return_data = true
    expression  = "IF(FILL(sent, 0) >= ${var.app_bounce_rate_alarm_min_sent}, FILL(bounces, 0) / sent, 0)"
  }
}

resource "aws_cloudwatch_metric_alarm" "app_complaint_rate" {
  for_each            = var.apps
  alarm_name          = "${local.prefix}${each.key}-complaint-rate"
  alarm_description   = "App ${each.key} endangers the SES account: complaints about more than ${var.app_complaint_rate_alarm_threshold * 100}% of the emails it sent in ${var.app_feedback_alarm_period_seconds / 60} min (counted from ${var.app_complaint_rate_alarm_min_sent} sent; AWS reviews an account at 0.1%, pauses around 0.5%). Read its feedback.complained log lines in ${aws_cloudwatch_log_group.worker.name} (app = ${each.key}); pause the app's sending (revoke its write to the outbound queue) until its recipients opted in and can unsubscribe."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.app_complaint_rate_alarm_threshold
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags

  metric_query {
    id          = "sent"
    return_data = false
    metric {
      namespace   = local.metrics_namespace
      metric_name = aws_cloudwatch_log_metric_filter.outbound_sent.metric_transformation[0].name
      dimensions  = { app = each.key }
      period      = var.app_feedback_alarm_period_seconds
      stat        = "Sum"
    }
  }

  metric_query {
    id          = "complaints"
    return_data = false
    metric {
      namespace   = local.metrics_namespace
      metric_name = aws_cloudwatch_log_metric_filter.feedback_complained.metric_transformation[0].name
      dimensions  = { app = each.key }
      period      = var.app_feedback_alarm_period_seconds
      stat        = "Sum"
    }
  }

  metric_query {
    id          = "rate"
    label       = "${each.key}: complaints / sent"
    return_data = true
    expression  = "IF(FILL(sent, 0) >= ${var.app_complaint_rate_alarm_min_sent}, FILL(complaints, 0) / sent, 0)"
  }
}
