# SES: a domain identity with Easy DKIM per domain (the DNS records to publish are
# outputs), an optional configuration set whose sending events (bounce, complaint,
# delivery, ...) reach the `<name>-ses-events` queue through an SNS topic (with
# ses_tracking, a second set that also tracks opens and clicks, for the emails that ask
# for it, publishing to the same topic), and the
# receipt rule that stores incoming mail in the raw bucket and notifies the inbound
# topic, in the module's own rule set or in an existing one.

resource "aws_sesv2_email_identity" "domain" {
  for_each               = toset(var.domains)
  email_identity         = each.value
  configuration_set_name = var.create_configuration_set ? aws_sesv2_configuration_set.this["outbound"].configuration_set_name : null

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

# --- configuration sets: reputation metrics + sending events -> SNS -> SQS ---------------
# One resource for both sets (local.configuration_sets: "outbound", and with
# ses_tracking "tracking") keeps their options the same; only the tracking set may have
# a custom redirect domain. Neither sets tracking on its own: SES tracks opens and clicks
# in every email sent through a set whose event destination matches OPEN or CLICK, which
# only the tracking set's does (ses_event_types refuses them for the outbound set).

resource "aws_sesv2_configuration_set" "this" {
  for_each               = local.configuration_sets
  configuration_set_name = each.value

  reputation_options {
    reputation_metrics_enabled = true
  }

  sending_options {
    sending_enabled = true
  }

  delivery_options {
    tls_policy = "OPTIONAL"
  }

  dynamic "tracking_options" {
    for_each = each.key == "tracking" && var.ses_tracking_redirect_domain != null ? [var.ses_tracking_redirect_domain] : []
    content {
      custom_redirect_domain = tracking_options.value
    }
  }

  tags = local.tags
}

# The set was counted before the tracking set joined it.
moved {
  from = aws_sesv2_configuration_set.this[0]
  to   = aws_sesv2_configuration_set.this["outbound"]
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
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ses:${local.region}:${local.account_id}:configuration-set/${local.configuration_set_name}"]
    }
  }

  # The tracking set (ses_tracking) publishes to the same topic.
  dynamic "statement" {
    for_each = local.ses_tracking ? [local.tracking_configuration_set_name] : []
    content {
      sid       = "AllowSESTrackingEventPublishing"
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
      condition {
        test     = "ArnLike"
        variable = "aws:SourceArn"
        values   = ["arn:${local.partition}:ses:${local.region}:${local.account_id}:configuration-set/${statement.value}"]
      }
    }
  }
}

resource "aws_sns_topic_policy" "ses_events" {
  count  = var.create_configuration_set ? 1 : 0
  arn    = aws_sns_topic.ses_events[0].arn
  policy = data.aws_iam_policy_document.ses_events_topic[0].json
}

# The topic's subscriber is the <name>-ses-events queue (messaging.tf), which the
# worker consumes; events wait there (14 days' retention) while no task runs.
resource "aws_sesv2_configuration_set_event_destination" "events" {
  count                  = var.create_configuration_set ? 1 : 0
  configuration_set_name = aws_sesv2_configuration_set.this["outbound"].configuration_set_name
  event_destination_name = "ses-events-queue"

  event_destination {
    enabled              = true
    matching_event_types = var.ses_event_types
    sns_destination {
      topic_arn = aws_sns_topic.ses_events[0].arn
    }
  }

  depends_on = [aws_sns_topic_policy.ses_events, aws_sns_topic_subscription.ses_events]
}

# The tracking set's destination: the same topic and queue, the same events plus OPEN and
# CLICK, so tracked emails are settled and their feedback counted like the others.
resource "aws_sesv2_configuration_set_event_destination" "tracking" {
  count                  = local.ses_tracking ? 1 : 0
  configuration_set_name = aws_sesv2_configuration_set.this["tracking"].configuration_set_name
  event_destination_name = "ses-events-queue"

  event_destination {
    enabled              = true
    matching_event_types = local.tracking_event_types
    sns_destination {
      topic_arn = aws_sns_topic.ses_events[0].arn
    }
  }

  depends_on = [aws_sns_topic_policy.ses_events, aws_sns_topic_subscription.ses_events]
}

# --- receiving -------------------------------------------------------------------------
# A region has ONE active receipt rule set per account. Either the module creates its
# own set and activates it (after checking that no other set is active, unless
# replace_active_receipt_rule_set), or the module adds its rule to an existing set
# (create_receipt_rule_set = false, receipt_rule_set_name = that set).

resource "aws_ses_receipt_rule_set" "this" {
  count         = var.create_receipt_rule_set ? 1 : 0
  rule_set_name = local.rule_set_name
}

# The set active in the region now. The provider's data source fails ("empty result")
# where no set is active at all, so it is read only when activation is to be checked.
data "aws_ses_active_receipt_rule_set" "current" {
  count = local.check_active_rule_set ? 1 : 0
}

resource "aws_ses_active_receipt_rule_set" "this" {
  count         = local.activate_rule_set ? 1 : 0
  rule_set_name = aws_ses_receipt_rule_set.this[0].rule_set_name

  lifecycle {
    precondition {
      condition     = !local.check_active_rule_set || try(data.aws_ses_active_receipt_rule_set.current[0].rule_set_name, "") == local.rule_set_name
      error_message = "Receipt rule set '${try(data.aws_ses_active_receipt_rule_set.current[0].rule_set_name, "?")}' is active in ${local.region}; activating '${local.rule_set_name}' would deactivate it (one active set per region). Add mailflow's rule to it instead (create_receipt_rule_set = false, receipt_rule_set_name = that set), or set replace_active_receipt_rule_set = true to replace it."
    }
  }
}

# With an existing set, say so (as a warning) if that set is not the active one: mail
# for the domains would then not reach the rule.
check "receipt_rule_set_is_active" {
  data "aws_ses_active_receipt_rule_set" "existing" {}

  assert {
    condition     = var.create_receipt_rule_set || data.aws_ses_active_receipt_rule_set.existing.rule_set_name == local.rule_set_name
    error_message = "The receipt rule set '${local.rule_set_name}' holding mailflow's rule is not the active set in ${local.region}: SES will not apply the rule until it is."
  }
}

resource "aws_ses_receipt_rule" "store" {
  name          = local.receipt_rule_name
  rule_set_name = var.create_receipt_rule_set ? aws_ses_receipt_rule_set.this[0].rule_set_name : local.rule_set_name
  after         = var.receipt_rule_after
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

  lifecycle {
    precondition {
      condition     = var.create_receipt_rule_set || var.receipt_rule_set_name != null
      error_message = "create_receipt_rule_set = false adds mailflow's rule to an existing set: name it in receipt_rule_set_name."
    }
  }
}
