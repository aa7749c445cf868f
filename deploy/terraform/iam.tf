# Task role: exactly the AWS actions the worker's code calls (derived from mailflow/ by
# tests/deploy/test_iam.py, which fails if this document grants more or less), each on
# exactly the resources of this deployment. Execution role: pull the image, write logs.

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

resource "aws_iam_role" "task" {
  name               = local.task_role_name
  description        = "mailflow worker (${var.name}): least-privilege role of the running code"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

# The worker's permissions. Keep this in step with docs/deployment.md's table; the test
# prints the difference when the code and this document disagree.
#
# The worker consumes inbound, outbound and (with create_configuration_set) the
# <name>-ses-events queue, calling the same SQS APIs on each. The events queue is
# appended to these statements rather than given its own, which would be left without
# a resource (an invalid policy) when the queue is not created. Its `-dlq` gets nothing:
# the worker writes its failure records to MAILFLOW_DLQ.
data "aws_iam_policy_document" "task" {
  statement {
    sid = "ConsumeWorkQueues"
    actions = [
      "sqs:ChangeMessageVisibility",
      "sqs:DeleteMessage",
      "sqs:ReceiveMessage",
    ]
    resources = concat(
      [
        aws_sqs_queue.this["inbound"].arn,
        aws_sqs_queue.this["outbound"].arn,
      ],
      [for q in aws_sqs_queue.ses_events : q.arn],
    )
  }

  # SendMessage on a consumed queue re-sends a message with DelaySeconds to hold it back;
  # GetQueueAttributes reads depth metrics and probes reachability.
  statement {
    sid = "UseQueues"
    actions = [
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
      "sqs:SendMessage",
    ]
    resources = concat(
      [for q in aws_sqs_queue.this : q.arn],
      [for q in aws_sqs_queue.ses_events : q.arn],
    )
  }

  statement {
    sid     = "ReadMailAndAttachments"
    actions = ["s3:GetObject"]
    resources = concat(
      [
        "${aws_s3_bucket.this["raw"].arn}/${var.raw_object_prefix}*",
        "${aws_s3_bucket.this["attachments"].arn}/*",
      ],
      local.attachment_source_object_arns,
    )
  }

  statement {
    sid       = "WriteAttachments"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.this["attachments"].arn}/*"]
  }

  statement {
    sid       = "CheckBuckets"
    actions   = ["s3:ListBucket"]
    resources = [for b in aws_s3_bucket.this : b.arn]
  }

  statement {
    sid = "IdempotencyTable"
    actions = [
      "dynamodb:BatchGetItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:DeleteItem",
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
    ]
    resources = [aws_dynamodb_table.idempotency.arn]
  }

  # SESv2 SendEmail with Content.Raw is authorized as ses:SendRawEmail as well as
  # ses:SendEmail (AccessDenied names ses:SendRawEmail otherwise).
  statement {
    sid     = "SendFromOurDomains"
    actions = ["ses:SendEmail", "ses:SendRawEmail"]
    resources = concat(
      [for d in aws_sesv2_email_identity.domain : d.arn],
      [for c in aws_sesv2_configuration_set.this : c.arn],
      local.sandbox_recipient_identity_arns,
    )
  }

  # GetAccount (send quota and rate) supports no resource-level permissions.
  statement {
    sid       = "ReadSendQuota"
    actions   = ["ses:GetAccount"]
    resources = ["*"]
  }

  # SSE-KMS on queues and buckets: sending to a queue or writing an object needs a data
  # key, receiving or reading needs Decrypt. (The table uses the key through DynamoDB.)
  statement {
    sid = "UseDeploymentKey"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "mailflow-worker"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# --- execution role: used by the ECS agent, not by our code ------------------------------

resource "aws_iam_role" "execution" {
  name               = local.execution_role_name
  description        = "mailflow (${var.name}): ECS pulls the image and ships logs"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrAuth"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PullWorkerImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [aws_ecr_repository.worker.arn]
  }

  statement {
    sid       = "DecryptImageLayers"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.worker.arn}:*"]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "mailflow-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}
