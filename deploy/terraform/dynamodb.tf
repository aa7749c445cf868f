# Idempotency claims (mailflow/idempotency.py): key attribute and TTL attribute must be
# the code's KEY_ATTRIBUTE / TTL_ATTRIBUTE (checked by tests/deploy/test_terraform.py).
resource "aws_dynamodb_table" "idempotency" {
  name                        = "${local.prefix}idempotency"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  deletion_protection_enabled = !var.force_destroy

  attribute {
    name = "pk"
    type = "S"
  }

  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  tags = local.tags
}
