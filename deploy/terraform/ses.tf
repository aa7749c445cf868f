# SES: a domain identity with Easy DKIM per domain (the DNS records to publish are
# outputs), an optional configuration set with bounce/complaint events, and the receipt
# rule that stores incoming mail in the raw bucket and notifies the inbound topic.

resource "aws_sesv2_email_identity" "domain" {
  for_each               = toset(var.domains)
  email_identity         = each.value
  configuration_set_name = var.create_configuration_set ? aws_sesv2_configuration_set.this[0].configuration_set_name : null

  dkim_signing_attributes {
    next_signing_key_length = "RSA_2048_BIT"
  }

  tags = local.tags
}

resource "aws_sesv2_email_identity_mail_from_attributes" "domain" {
  for_each               = var.mail_from_subdomain == null ? toset([]) : toset(var.domains)
  email_identity         = aws_sesv2_email_identity.domain[each.value].email_identity
  mail_from_domain       = "${var.mail_from_subdomain}.${each.value}"
  behavior_on_mx_failure = "USE_DEFAULT_VALUE"
}

# --- configuration set: reputation metrics + bounce/complaint events -------------------

resource "aws_sesv2_configuration_set" "this" {
  count                  = var.create_configuration_set ? 1 : 0
  configuration_set_name = local.configuration_set_name

  reputation_options {
    reputation_metrics_enabled = true
  }

  sending_options {
    sending_enabled = true
  }

  delivery_options {
    tls_policy = "OPTIONAL"
  }

  tags = local.tags
}

resource "aws_sns_topic" "ses_events" {
  count             = var.create_configuration_set ? 1 : 0
  name              = "${local.prefix}ses-events"
  kms_master_key_id = aws_kms_key.this.arn
  tags              = local.tags
}

data "aws_iam_policy_document" "ses_events_topic" {
  count = var.create_configuration_set ? 1 : 0
  statement {
    sid       = "AllowSESEventPublishing"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.ses_events[0].arn]
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

resource "aws_sns_topic_policy" "ses_events" {
  count  = var.create_configuration_set ? 1 : 0
  arn    = aws_sns_topic.ses_events[0].arn
  policy = data.aws_iam_policy_document.ses_events_topic[0].json
}

resource "aws_sesv2_configuration_set_event_destination" "feedback" {
  count                  = var.create_configuration_set ? 1 : 0
  configuration_set_name = aws_sesv2_configuration_set.this[0].configuration_set_name
  event_destination_name = "bounces-and-complaints"

  event_destination {
    enabled              = true
    matching_event_types = ["BOUNCE", "COMPLAINT", "REJECT", "RENDERING_FAILURE"]
    sns_destination {
      topic_arn = aws_sns_topic.ses_events[0].arn
    }
  }

  depends_on = [aws_sns_topic_policy.ses_events]
}

# --- receiving -------------------------------------------------------------------------

resource "aws_ses_receipt_rule_set" "this" {
  rule_set_name = local.rule_set_name
}

resource "aws_ses_active_receipt_rule_set" "this" {
  count         = var.activate_receipt_rule_set ? 1 : 0
  rule_set_name = aws_ses_receipt_rule_set.this.rule_set_name
}

resource "aws_ses_receipt_rule" "store" {
  name          = local.receipt_rule_name
  rule_set_name = aws_ses_receipt_rule_set.this.rule_set_name
  recipients    = var.domains
  enabled       = true
  # Spam and virus verdicts land in the notification; the worker's policy acts on them.
  scan_enabled = true
  tls_policy   = "Require"

  s3_action {
    position          = 1
    bucket_name       = aws_s3_bucket.this["raw"].id
    object_key_prefix = var.raw_object_prefix
    topic_arn         = aws_sns_topic.inbound.arn
  }

  # SES checks at creation that it may write to the bucket and publish to the topic.
  depends_on = [aws_s3_bucket_policy.this, aws_sns_topic_policy.inbound]
}
