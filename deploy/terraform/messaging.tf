# SNS topic for SES receipt notifications -> inbound queue; every queue (inbound,
# outbound, default, MAILFLOW_DLQ, one per app) with its own `-dlq` redrive queue.

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
  }
}

resource "aws_sns_topic_policy" "inbound" {
  arn    = aws_sns_topic.inbound.arn
  policy = data.aws_iam_policy_document.inbound_topic.json
}

resource "aws_sqs_queue" "dlq" {
  for_each                          = local.queues
  name                              = "${each.value}-dlq"
  message_retention_seconds         = 1209600
  max_message_size                  = 262144
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 3600
  tags                              = merge(local.tags, { "mailflow:queue-role" = "${each.key}-dlq" })
}

resource "aws_sqs_queue" "this" {
  for_each                   = local.queues
  name                       = each.value
  visibility_timeout_seconds = local.queue_visibility_timeout_seconds
  message_retention_seconds  = 1209600
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
