output "dns_records" {
  description = "Publish these in your DNS zone (DKIM, MX, MAIL FROM, DMARC)."
  value       = module.mailflow.dns_records
}

output "ecr_repository_url" {
  description = "docker push target."
  value       = module.mailflow.ecr_repository_url
}

output "queue_urls" {
  description = "Give each app its queue URL and the outbound queue URL."
  value       = module.mailflow.queue_urls
}

output "prometheus_scrape_config" {
  description = "Paste into your Prometheus server's scrape_configs."
  value       = module.mailflow.prometheus_scrape_config
}

output "ses_events_queue_url" {
  description = "SES sending events (bounces, complaints, deliveries), consumed by the worker."
  value       = module.mailflow.ses_events_queue_url
}
