resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = local.tags
}

resource "aws_cloudwatch_log_group" "worker" {
  #checkov:skip=CKV_AWS_338:Retention is a variable (default 30 days); a year of debug logs of mail traffic is a privacy cost, not a safety gain.
  name              = "/mailflow/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_security_group" "worker" {
  name        = "${local.prefix}worker"
  description = "mailflow worker: no inbound except metrics from the given sources; HTTPS out to AWS APIs"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_egress_rule" "https" {
  #checkov:skip=CKV_AWS_382:The worker calls AWS public endpoints (SQS, S3, SES, DynamoDB, ECR, Logs) over HTTPS only; restrict further with VPC endpoints + prefix lists if you have them.
  security_group_id = aws_security_group.worker.id
  description       = "HTTPS to AWS APIs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# Counted by list position, not for_each over the values: the ids (or CIDRs) may come
# from resources created in the same apply, unknown at plan time, and for_each keys
# must be known then. Only the list's length must be.
resource "aws_vpc_security_group_ingress_rule" "metrics_cidr" {
  count             = length(var.metrics_ingress_cidr_blocks)
  security_group_id = aws_security_group.worker.id
  description       = "Prometheus scrapes /metrics"
  ip_protocol       = "tcp"
  from_port         = var.http_port
  to_port           = var.http_port
  cidr_ipv4         = var.metrics_ingress_cidr_blocks[count.index]
}

resource "aws_vpc_security_group_ingress_rule" "metrics_sg" {
  count                        = length(var.metrics_ingress_security_group_ids)
  security_group_id            = aws_security_group.worker.id
  description                  = "Prometheus scrapes /metrics"
  ip_protocol                  = "tcp"
  from_port                    = var.http_port
  to_port                      = var.http_port
  referenced_security_group_id = var.metrics_ingress_security_group_ids[count.index]
}

locals {
  worker_container = {
    name                   = local.container_name
    image                  = local.image
    essential              = true
    user                   = "10001:10001"
    readonlyRootFilesystem = true
    # The worker drains for shutdown_grace_seconds after SIGTERM; ECS waits this long
    # before SIGKILL.
    stopTimeout = local.stop_timeout_seconds
    portMappings = [{
      name          = "metrics"
      containerPort = var.http_port
      hostPort      = var.http_port
      protocol      = "tcp"
    }]
    environment = [for k in sort(keys(local.worker_environment)) : { name = k, value = local.worker_environment[k] }]
    mountPoints = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    healthCheck = {
      command     = ["CMD", "python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MAILFLOW_HTTP_PORT', '8080'), timeout=3)"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.worker.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "worker"
        mode                  = "non-blocking"
        max-buffer-size       = "4m"
      }
    }
  }
}

resource "aws_ecs_task_definition" "worker" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # Scratch space for the read-only root filesystem (Fargate task storage).
  volume {
    name = "tmp"
  }

  # Task storage holds the image and the spool (/tmp): in-flight raw mail over 8 MB
  # waits there on disk, at worst concurrency x max email bytes (40 MB) x 2 consumers
  # = 8 GB at concurrency 100. 21 GiB (the smallest size one can set) covers that.
  ephemeral_storage {
    size_in_gib = var.ephemeral_storage_gib
  }

  container_definitions = jsonencode(concat([local.worker_container], local.adot_containers))
  tags                  = local.tags

  lifecycle {
    precondition {
      condition     = contains(local.fargate_memory_options[tostring(var.task_cpu)], var.task_memory)
      error_message = "task_memory ${var.task_memory} is not a Fargate combination with task_cpu ${var.task_cpu}: allowed ${join(", ", [for m in local.fargate_memory_options[tostring(var.task_cpu)] : tostring(m)])} MiB."
    }
    precondition {
      # An override may trust a smaller measured RSS factor than 3x, not one below 1x.
      condition     = local.max_in_flight_bytes <= (var.task_memory - 384) * 1048576
      error_message = "max_in_flight_bytes ${local.max_in_flight_bytes} exceeds task_memory minus 384 MiB even at 1 byte of memory per email byte: raise task_memory (derived budget: ${local.max_in_flight_bytes_derived})."
    }
    precondition {
      condition     = var.create_configuration_set || !var.ses_tracking
      error_message = "ses_tracking = true needs create_configuration_set = true: the tracking set publishes to the configuration set's events topic and queue."
    }
    precondition {
      condition     = local.max_in_flight_bytes >= 41943040
      error_message = "task_memory ${var.task_memory} MiB leaves a byte budget (${local.max_in_flight_bytes} bytes) below one 40 MB email: use at least 1024 MiB."
    }
  }
}

resource "aws_ecs_service" "worker" {
  name                               = "${local.prefix}worker"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.worker.arn
  desired_count                      = var.min_tasks
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.worker.id]
    assign_public_ip = var.assign_public_ip
  }

  dynamic "service_registries" {
    for_each = var.prometheus_mode == "cloudmap" ? [1] : []
    content {
      registry_arn   = aws_service_discovery_service.metrics[0].arn
      container_name = local.container_name
      container_port = var.http_port
    }
  }

  # Autoscaling owns the task count after creation.
  lifecycle {
    ignore_changes = [desired_count]
  }

  tags = local.tags
}
