# Two ways for Prometheus to scrape the workers, chosen by var.prometheus_mode:
#   cloudmap - each task registers an SRV record <name>-worker.<namespace> in Cloud Map;
#              a Prometheus server in the VPC uses dns_sd_configs (output
#              prometheus_scrape_config) and is allowed in by metrics_ingress_*.
#   amp      - an ADOT collector sidecar scrapes localhost:<http_port> and remote-writes
#              to Amazon Managed Service for Prometheus with SigV4 (task role permission
#              aps:RemoteWrite on the workspace only; this is the sidecar's, not the
#              worker's, so it is a separate policy from the derived one in iam.tf).

locals {
  cloudmap_enabled = var.prometheus_mode == "cloudmap"
  amp_enabled      = var.prometheus_mode == "amp"
  create_namespace = local.cloudmap_enabled && var.cloudmap_namespace_id == null
  namespace_id     = local.cloudmap_enabled ? coalesce(var.cloudmap_namespace_id, try(aws_service_discovery_private_dns_namespace.this[0].id, null)) : null

  amp_workspace_arn = local.amp_enabled ? coalesce(var.amp_workspace_arn, try(aws_prometheus_workspace.this[0].arn, null)) : null
  amp_workspace_id  = local.amp_enabled ? element(split("/", local.amp_workspace_arn), length(split("/", local.amp_workspace_arn)) - 1) : null
  amp_remote_write  = local.amp_enabled ? "https://aps-workspaces.${local.region}.amazonaws.com/workspaces/${local.amp_workspace_id}/api/v1/remote_write" : null

  adot_config = local.amp_enabled ? yamlencode({
    extensions = {
      sigv4auth = { region = local.region, service = "aps" }
    }
    receivers = {
      prometheus = {
        config = {
          global = { scrape_interval = "30s", scrape_timeout = "10s" }
          scrape_configs = [{
            job_name       = "mailflow"
            metrics_path   = "/metrics"
            static_configs = [{ targets = ["localhost:${var.http_port}"], labels = { deployment = var.name } }]
          }]
        }
      }
    }
    processors = {
      # Every task scrapes "localhost": the ECS task ARN keeps their series apart.
      resourcedetection = { detectors = ["env", "ecs"], timeout = "5s", override = false }
      batch             = {}
    }
    exporters = {
      prometheusremotewrite = {
        endpoint                         = local.amp_remote_write
        auth                             = { authenticator = "sigv4auth" }
        resource_to_telemetry_conversion = { enabled = true }
      }
    }
    service = {
      extensions = ["sigv4auth"]
      pipelines = {
        metrics = {
          receivers  = ["prometheus"]
          processors = ["resourcedetection", "batch"]
          exporters  = ["prometheusremotewrite"]
        }
      }
    }
  }) : null

  adot_containers = local.amp_enabled ? [{
    name                   = "adot-collector"
    image                  = var.adot_image
    essential              = false
    readonlyRootFilesystem = true
    environment            = [{ name = "AOT_CONFIG_CONTENT", value = local.adot_config }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.worker.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "adot"
      }
    }
  }] : []
}

# --- Cloud Map ----------------------------------------------------------------------------

resource "aws_service_discovery_private_dns_namespace" "this" {
  count       = local.create_namespace ? 1 : 0
  name        = var.cloudmap_namespace_name
  description = "mailflow ${var.name}: worker metrics endpoints for Prometheus"
  vpc         = var.vpc_id
  tags        = local.tags
}

resource "aws_service_discovery_service" "metrics" {
  count = local.cloudmap_enabled ? 1 : 0
  name  = "${local.prefix}worker"

  dns_config {
    namespace_id   = local.namespace_id
    routing_policy = "MULTIVALUE"
    dns_records {
      type = "SRV"
      ttl  = 10
    }
  }

  health_check_custom_config {
    failure_threshold = 1
  }

  tags = local.tags
}

# --- Amazon Managed Service for Prometheus + ADOT ------------------------------------------

resource "aws_prometheus_workspace" "this" {
  count       = local.amp_enabled && var.amp_workspace_arn == null ? 1 : 0
  alias       = var.name
  kms_key_arn = aws_kms_key.this.arn
  tags        = local.tags
}

data "aws_iam_policy_document" "adot" {
  count = local.amp_enabled ? 1 : 0
  statement {
    sid       = "RemoteWriteMetrics"
    actions   = ["aps:RemoteWrite"]
    resources = [local.amp_workspace_arn]
  }
}

resource "aws_iam_role_policy" "adot" {
  count  = local.amp_enabled ? 1 : 0
  name   = "adot-remote-write"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.adot[0].json
}
