# Scale on backlog per task: (visible inbound + visible outbound) / running tasks,
# target-tracked to var.scaling_backlog_per_task. Target tracking scales in down to
# min_tasks, zero included, after ~15 minutes without a visible message; it cannot scale
# out from zero (its adjustment is proportional to the running count), so with
# min_tasks = 0 a queue alarm and a step policy start the first task.

locals {
  scale_to_zero = var.min_tasks == 0
}

resource "aws_appautoscaling_target" "worker" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.worker.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_tasks
  max_capacity       = var.max_tasks

  lifecycle {
    precondition {
      condition     = var.max_tasks >= var.min_tasks
      error_message = "max_tasks must be >= min_tasks."
    }
  }
}

resource "aws_appautoscaling_policy" "backlog" {
  name               = "${local.prefix}backlog-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.scaling_backlog_per_task
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    customized_metric_specification {
      metrics {
        id          = "inbound"
        label       = "inbound visible"
        return_data = false
        metric_stat {
          stat = "Sum"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"
            dimensions {
              name  = "QueueName"
              value = aws_sqs_queue.this["inbound"].name
            }
          }
        }
      }

      metrics {
        id          = "outbound"
        label       = "outbound visible"
        return_data = false
        metric_stat {
          stat = "Sum"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"
            dimensions {
              name  = "QueueName"
              value = aws_sqs_queue.this["outbound"].name
            }
          }
        }
      }

      metrics {
        id          = "tasks"
        label       = "running tasks"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.this.name
            }
            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.worker.name
            }
          }
        }
      }

      metrics {
        id    = "backlog"
        label = "visible messages per task"
        # AWS's documented backlog-per-task shape. With no task running there is no
        # datapoint, and target tracking does nothing: the wake-up policy acts then.
        expression  = "(inbound + outbound) / tasks"
        return_data = true
      }
    }
  }
}

# --- scale from zero (min_tasks = 0) ----------------------------------------------------
# "Mail is waiting and nobody is receiving": messages visible on inbound or outbound
# while neither queue sees a single receive (a running worker long-polls both queues
# three times a minute even when idle, so the receive counts are > 0 whenever a task
# runs). Then set the desired count to 1; target tracking takes over from there.
# All four metrics come from SQS, which publishes them together once a message makes
# an idle queue active again. Latency of the first mail after idle: the 1-minute alarm
# period plus SQS's metric delay (~1-2 min) plus the task's start (~30-60 s).

resource "aws_appautoscaling_policy" "wake_up" {
  count              = local.scale_to_zero ? 1 : 0
  name               = "${local.prefix}wake-up"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ExactCapacity"
    cooldown                = 60
    metric_aggregation_type = "Maximum"

    # The alarm fires only while no task receives, so "exactly 1" never lowers a
    # running fleet: it is "at least 1" in effect.
    step_adjustment {
      metric_interval_lower_bound = 0
      scaling_adjustment          = 1
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "wake_up" {
  count               = local.scale_to_zero ? 1 : 0
  alarm_name          = "${local.prefix}wake-up"
  alarm_description   = "Messages wait on ${aws_sqs_queue.this["inbound"].name} or ${aws_sqs_queue.this["outbound"].name} and no task receives: start one (min_tasks = 0)."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.wake_up[0].arn]
  tags                = local.tags

  dynamic "metric_query" {
    for_each = {
      inbound_visible   = { queue = "inbound", metric = "ApproximateNumberOfMessagesVisible", stat = "Maximum" }
      outbound_visible  = { queue = "outbound", metric = "ApproximateNumberOfMessagesVisible", stat = "Maximum" }
      inbound_receives  = { queue = "inbound", metric = "NumberOfEmptyReceives", stat = "Sum" }
      outbound_receives = { queue = "outbound", metric = "NumberOfEmptyReceives", stat = "Sum" }
      inbound_received  = { queue = "inbound", metric = "NumberOfMessagesReceived", stat = "Sum" }
      outbound_received = { queue = "outbound", metric = "NumberOfMessagesReceived", stat = "Sum" }
    }
    content {
      id          = metric_query.key
      return_data = false
      metric {
        namespace   = "AWS/SQS"
        metric_name = metric_query.value.metric
        dimensions  = { QueueName = aws_sqs_queue.this[metric_query.value.queue].name }
        period      = 60
        stat        = metric_query.value.stat
      }
    }
  }

  metric_query {
    id          = "waiting_without_consumer"
    label       = "messages visible while no task receives (1 = start a task)"
    return_data = true
    expression  = "IF((inbound_visible + outbound_visible) > 0 AND (FILL(inbound_receives, 0) + FILL(outbound_receives, 0) + FILL(inbound_received, 0) + FILL(outbound_received, 0)) == 0, 1, 0)"
  }
}
