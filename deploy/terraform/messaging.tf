# SNS topic for SES receipt notifications -> inbound queue; every queue (inbound,
# outbound, default, MAILFLOW_DLQ, one per app) with its own `-dlq` redrive queue; the
# configuration set's events topic -> the `<name>-ses-events` queue (+ its `-dlq`).

resource "aws_sns_topic" "inbound" {
  name              = "${local.prefix}inbound-notifications"
  kms_master_key_id = aws_kms_key.this.arn
  tags              = local.tags
}

data "aws_iam_policy_document" "inbound_topic" {
  statement {
    sid       = "AllowSESReceiptRulePublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.inbound.arn]
    principals {
      type        = "Service"
      identifiers = ["ses.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.receipt_rule_arn]
    }
  }
}

resource "aws_sns_topic_policy" "inbound" {
  arn    = aws_sns_topic.inbound.arn
  policy = data.aws_iam_policy_document.inbound_topic.json
}

resource "aws_sqs_queue" "dlq" {
  for_each                          = local.queues
  name                              = "${each.value}-dlq"
  message_retention_seconds         = local.message_retention_seconds
  max_message_size                  = 262144
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 3600
  tags                              = merge(local.tags, { "mailflow:queue-role" = "${each.key}-dlq" })

  lifecycle {
    # SQS names are at most 80 characters: `<name>-<app>-dlq` is the longest.
    precondition {
      condition     = length("${each.value}-dlq") <= 80
      error_message = "Queue name ${each.value}-dlq is longer than SQS's 80 characters: shorten `name` or the app name."
    }
  }
}

resource "aws_sqs_queue" "this" {
  for_each                   = local.queues
  name                       = each.value
  visibility_timeout_seconds = local.queue_visibility_timeout_seconds
  message_retention_seconds  = local.message_retention_seconds
  # Same as `mailflow provision`: larger app messages are offloaded to S3 by the worker
  # (extended-client pointer format), which reads this attribute to decide.
  max_message_size          = 262144
  receive_wait_time_seconds = 20
  kms_master_key_id         = aws_kms_key.this.arn
  # A data key is reused for an hour: KMS requests stay a few per hour per queue.
  kms_data_key_reuse_period_seconds = 3600
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn
    maxReceiveCount     = local.max_receive_count
  })
  tags = merge(local.tags, { "mailflow:queue-role" = each.key })
}

resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  for_each  = local.queues
  queue_url = aws_sqs_queue.dlq[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.this[each.key].arn]
  })
}

data "aws_iam_policy_document" "inbound_queue" {
  statement {
    sid       = "AllowInboundTopic"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this["inbound"].arn]
    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_sns_topic.inbound.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "inbound" {
  queue_url = aws_sqs_queue.this["inbound"].id
  policy    = data.aws_iam_policy_document.inbound_queue.json
}

resource "aws_sns_topic_subscription" "inbound" {
  topic_arn            = aws_sns_topic.inbound.arn
  protocol             = "sqs"
  endpoint             = aws_sqs_queue.this["inbound"].arn
  raw_message_delivery = var.sns_raw_message_delivery

  depends_on = [aws_sqs_queue_policy.inbound]
}

# --- SES sending events: configuration set -> SNS topic -> <name>-ses-events ------------
# The worker consumes this queue (MAILFLOW_SES_EVENTS_QUEUE, main.tf): Send, Delivery,
# Bounce and Reject events settle sends whose outcome was unknown, and later bounces and
# complaints arrive here too. It is handled like the worker's own queues: the same
# visibility (the worker's lease and longest handling) and the same redrive after
# max_attempts + redrive_headroom receives. SNS envelopes are kept (no raw delivery):
# the envelope's Timestamp and MessageId identify a delivery, and SES events carry no
# attributes.

resource "aws_sqs_queue" "ses_events_dlq" {
  count                             = var.create_configuration_set ? 1 : 0
  name                              = "${local.ses_events_queue_name}-dlq"
  message_retention_seconds         = local.message_retention_seconds
  max_message_size                  = 262144
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 3600
  tags                              = merge(local.tags, { "mailflow:queue-role" = "ses-events-dlq" })

  lifecycle {
    precondition {
      condition     = length("${local.ses_events_queue_name}-dlq") <= 80
      error_message = "Queue name ${local.ses_events_queue_name}-dlq is longer than SQS's 80 characters: shorten `name`."
    }
  }
}

resource "aws_sqs_queue" "ses_events" {
  count                             = var.create_configuration_set ? 1 : 0
  name                              = local.ses_events_queue_name
  visibility_timeout_seconds        = local.queue_visibility_timeout_seconds
  message_retention_seconds         = local.message_retention_seconds
  max_message_size                  = 262144
  receive_wait_time_seconds         = 20
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 3600
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.ses_events_dlq[0].arn
    maxReceiveCount     = local.max_receive_count
  })
  tags = merge(local.tags, { "mailflow:queue-role" = "ses-events" })
}

resource "aws_sqs_queue_redrive_allow_policy" "ses_events_dlq" {
  count     = var.create_configuration_set ? 1 : 0
  queue_url = aws_sqs_queue.ses_events_dlq[0].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.ses_events[0].arn]
  })
}

data "aws_iam_policy_document" "ses_events_queue" {
  count = var.create_configuration_set ? 1 : 0
  statement {
    sid       = "AllowSESEventsTopic"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.ses_events[0].arn]
    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_sns_topic.ses_events[0].arn]
    }
  }
}

resource "aws_sqs_queue_policy" "ses_events" {
  count     = var.create_configuration_set ? 1 : 0
  queue_url = aws_sqs_queue.ses_events[0].id
  policy    = data.aws_iam_policy_document.ses_events_queue[0].json
}

resource "aws_sns_topic_subscription" "ses_events" {
  count                = var.create_configuration_set ? 1 : 0
  topic_arn            = aws_sns_topic.ses_events[0].arn
  protocol             = "sqs"
  endpoint             = aws_sqs_queue.ses_events[0].arn
  raw_message_delivery = false

  depends_on = [aws_sqs_queue_policy.ses_events]
}
