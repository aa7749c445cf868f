# CloudWatch alarms: DLQs not empty, oldest message too old, no running task, SES
# bounce and complaint rates. Actions go to var.alarm_actions.

locals {
  # The worker's failure-record queue (MAILFLOW_DLQ) plus every SQS redrive DLQ.
  dead_letter_queues = merge(
    { "dlq" = aws_sqs_queue.this["dlq"].name },
    { for role, q in aws_sqs_queue.dlq : "${role}-dlq" => q.name },
  )
  # Queues that should be drained continuously (by the worker or by an app).
  flowing_queues = { for role, q in aws_sqs_queue.this : role => q.name if role != "dlq" }
}

resource "aws_cloudwatch_metric_alarm" "dlq_not_empty" {
  for_each            = local.dead_letter_queues
  alarm_name          = "${each.value}-not-empty"
  alarm_description   = "Messages are waiting in ${each.value}: inspect with `mailflow peek`, fix, then `mailflow redrive`."
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

resource "aws_cloudwatch_metric_alarm" "no_running_tasks" {
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
