output "dns_records" {
  description = "DNS records to publish for each domain: DKIM CNAMEs (verification), the inbound MX, custom MAIL FROM MX/SPF and a starter DMARC policy."
  value = {
    for d in var.domains : d => concat(
      [
        for token in aws_sesv2_email_identity.domain[d].dkim_signing_attributes[0].tokens : {
          name  = "${token}._domainkey.${d}"
          type  = "CNAME"
          value = "${token}.dkim.amazonses.com"
        }
      ],
      [
        { name = d, type = "MX", value = "10 inbound-smtp.${local.region}.amazonaws.com" },
        { name = "_dmarc.${d}", type = "TXT", value = "v=DMARC1; p=none; rua=mailto:postmaster@${d}" },
      ],
      var.mail_from_subdomain == null ? [] : [
        { name = "${var.mail_from_subdomain}.${d}", type = "MX", value = "10 feedback-smtp.${local.region}.amazonses.com" },
        { name = "${var.mail_from_subdomain}.${d}", type = "TXT", value = "v=spf1 include:amazonses.com ~all" },
      ],
    )
  }
}

output "queue_urls" {
  description = "Queue URLs by role (inbound, outbound, default, dlq, app-<name>)."
  value       = { for role, q in aws_sqs_queue.this : role => q.url }
}

output "queue_arns" {
  description = "Queue ARNs by role; apps need sqs:ReceiveMessage/DeleteMessage on their own and sqs:SendMessage on outbound."
  value       = { for role, q in aws_sqs_queue.this : role => q.arn }
}

output "dead_letter_queue_urls" {
  description = "SQS redrive DLQ URLs by role of their source queue."
  value       = { for role, q in aws_sqs_queue.dlq : role => q.url }
}

output "raw_bucket" {
  description = "Bucket holding received raw MIME."
  value       = aws_s3_bucket.this["raw"].id
}

output "attachments_bucket" {
  description = "Bucket holding attachments (inbound extracted, outbound sources)."
  value       = aws_s3_bucket.this["attachments"].id
}

output "idempotency_table" {
  description = "DynamoDB idempotency table name."
  value       = aws_dynamodb_table.idempotency.name
}

output "kms_key_arn" {
  description = "Customer managed key encrypting queues, buckets, table, topics and logs. Apps sending to mailflow-outbound need kms:GenerateDataKey and kms:Decrypt on it."
  value       = aws_kms_key.this.arn
}

output "inbound_topic_arn" {
  description = "SNS topic SES publishes receipt notifications to."
  value       = aws_sns_topic.inbound.arn
}

output "ses_events_topic_arn" {
  description = "SNS topic receiving the configuration sets' sending events (ses_event_types; with ses_tracking also the tracking set's opens and clicks); subscribed by the ses-events queue (null when create_configuration_set is false)."
  value       = try(aws_sns_topic.ses_events[0].arn, null)
}

output "ses_events_queue_url" {
  description = "URL of `<name>-ses-events`: SES bounce, complaint, delivery, ... events in their SNS envelope (null when create_configuration_set is false). The worker consumes it (MAILFLOW_SES_EVENTS_QUEUE): Send, Delivery, Bounce and Reject events settle sends whose outcome was unknown; later bounces and complaints arrive there too."
  value       = try(aws_sqs_queue.ses_events[0].url, null)
}

output "ses_events_queue_name" {
  description = "Name of the SES events queue, the worker's MAILFLOW_SES_EVENTS_QUEUE (null when create_configuration_set is false)."
  value       = try(aws_sqs_queue.ses_events[0].name, null)
}

output "ses_events_queue_arn" {
  description = "ARN of the SES events queue; the task role already consumes it (null when create_configuration_set is false)."
  value       = try(aws_sqs_queue.ses_events[0].arn, null)
}

output "ses_events_dead_letter_queue_url" {
  description = "URL of the SES events queue's redrive DLQ (null when create_configuration_set is false)."
  value       = try(aws_sqs_queue.ses_events_dlq[0].url, null)
}

output "configuration_set_name" {
  description = "SES configuration set the worker sends through (every email that does not ask for tracking; null when disabled)."
  value       = try(aws_sesv2_configuration_set.this["outbound"].configuration_set_name, null)
}

output "tracking_configuration_set_name" {
  description = "SES configuration set with open and click tracking that emails asking for tracking are sent through, the worker's MAILFLOW_OUTBOUND__TRACKING_CONFIGURATION_SET (null unless ses_tracking)."
  value       = try(aws_sesv2_configuration_set.this["tracking"].configuration_set_name, null)
}

output "receipt_rule_set_name" {
  description = "SES receipt rule set holding the module's rule: created and activated by the module, or the existing set named in receipt_rule_set_name."
  value       = aws_ses_receipt_rule.store.rule_set_name
}

output "receipt_rule_arn" {
  description = "ARN of the module's receipt rule (the aws:SourceArn the raw bucket and the inbound topic accept)."
  value       = local.receipt_rule_arn
}

output "ecr_repository_url" {
  description = "Push the worker image here (docker push <url>:<image_tag>)."
  value       = aws_ecr_repository.worker.repository_url
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "ECS service name."
  value       = aws_ecs_service.worker.name
}

output "task_role_arn" {
  description = "The worker's IAM role."
  value       = aws_iam_role.task.arn
}

output "max_in_flight_bytes" {
  description = "MAILFLOW_MAX_IN_FLIGHT_BYTES given to the worker: derived from task_memory unless overridden."
  value       = local.max_in_flight_bytes
}

output "vpc_endpoint_ids" {
  description = "VPC endpoints created by the module, by service (empty unless create_vpc_endpoints)."
  value = merge(
    { for svc, e in aws_vpc_endpoint.interface : svc => e.id },
    { for svc, e in aws_vpc_endpoint.gateway : svc => e.id },
  )
}

output "security_group_id" {
  description = "The workers' security group (add it as a source elsewhere if needed)."
  value       = aws_security_group.worker.id
}

output "log_group_name" {
  description = "CloudWatch log group of the worker (and the ADOT sidecar)."
  value       = aws_cloudwatch_log_group.worker.name
}

output "worker_environment" {
  description = "The environment the worker runs with (the operator contract)."
  value       = local.worker_environment
}

output "prometheus_scrape_config" {
  description = "prometheus.yml scrape_configs entry for prometheus_mode = \"cloudmap\" (null otherwise)."
  value = local.cloudmap_enabled ? yamlencode([{
    job_name     = "mailflow"
    metrics_path = "/metrics"
    dns_sd_configs = [{
      names            = ["${local.prefix}worker.${var.cloudmap_namespace_id == null ? var.cloudmap_namespace_name : "<your-namespace>"}"]
      type             = "SRV"
      refresh_interval = "30s"
    }]
  }]) : null
}

output "amp_remote_write_url" {
  description = "Amazon Managed Prometheus remote-write endpoint (prometheus_mode = \"amp\"); query it from Amazon Managed Grafana with the dashboard in deploy/compose/grafana/dashboards."
  value       = local.amp_remote_write
}
