# Two buckets: raw received mail (written only by our SES receipt rule) and attachments
# (written by the worker, read by apps through presigned URLs). Both: KMS with the
# deployment's key, public access blocked, owner-enforced, TLS only, lifecycle expiry.

locals {
  buckets = {
    raw         = { name = local.raw_bucket_name, expiration_days = var.raw_mail_expiration_days }
    attachments = { name = local.attachments_bucket_name, expiration_days = var.attachments_expiration_days }
  }
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Access logging needs a separate log bucket the operator owns; CloudTrail data events are the recommended audit trail for these buckets.
  #checkov:skip=CKV_AWS_144:Cross-region replication is pointless for transient mail that expires after days.
  #checkov:skip=CKV_AWS_21:Versioning is off on purpose: objects are write-once and must really disappear at expiry (privacy).
  #checkov:skip=CKV2_AWS_62:Event notifications are not needed: SES notifies through SNS; the worker writes attachments itself.
  for_each      = local.buckets
  bucket        = each.value.name
  force_destroy = var.force_destroy
  tags          = merge(local.tags, { "mailflow:bucket" = each.key })

  lifecycle {
    precondition {
      condition     = length(each.value.name) >= 3 && length(each.value.name) <= 63
      error_message = "Bucket name ${each.value.name} is ${length(each.value.name)} characters; S3 allows 3-63. Shorten `name` or set ${each.key}_bucket_name."
    }
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each                = aws_s3_bucket.this
  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    # One KMS call per bucket and period instead of per object: KMS cost stays flat.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id

  lifecycle {
    # A failure record can wait in a DLQ for the queues' whole retention; redriving it
    # re-reads the raw mail (inbound) or the attachments (outbound): they must still exist.
    precondition {
      condition     = local.buckets[each.key].expiration_days >= local.message_retention_days
      error_message = "The ${each.key} bucket expires objects after ${local.buckets[each.key].expiration_days} days, before the DLQs' ${local.message_retention_days}-day retention: a redriven failure record would find its object gone (NoSuchKey)."
    }
  }

  rule {
    id     = "expire-${each.key}"
    status = "Enabled"
    filter {}
    expiration {
      days = local.buckets[each.key].expiration_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  policy   = each.key == "raw" ? data.aws_iam_policy_document.raw_bucket.json : data.aws_iam_policy_document.attachments_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

data "aws_iam_policy_document" "tls_only" {
  for_each = local.buckets
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      "arn:${local.partition}:s3:::${each.value.name}",
      "arn:${local.partition}:s3:::${each.value.name}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

data "aws_iam_policy_document" "raw_bucket" {
  source_policy_documents = [data.aws_iam_policy_document.tls_only["raw"].json]

  # Only our receipt rule may write raw mail (AWS's documented SES -> S3 policy), in
  # whichever rule set it lives (local.receipt_rule_arn).
  statement {
    sid       = "AllowSESReceiptRulePuts"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.this["raw"].arn}/${var.raw_object_prefix}*"]
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

  # ...and nobody else: IAM principals of the account cannot add objects either.
  statement {
    sid       = "DenyWritesByAnyoneButSES"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.this["raw"].arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:PrincipalIsAWSService"
      values   = ["false"]
    }
  }
}

data "aws_iam_policy_document" "attachments_bucket" {
  source_policy_documents = [data.aws_iam_policy_document.tls_only["attachments"].json]
}
