# ElastiCache for Redis for the gateway's shared fleet state: a primary and a replica in another zone with
# automatic failover, TLS in transit, an AUTH token, encryption at rest with KMS, reachable only from the
# EKS nodes' security group. The state is soft (it rebuilds itself within seconds): no snapshots.

resource "random_password" "auth" {
  # ElastiCache AUTH tokens: 16-128 printable characters without @, " or /.
  length           = 48
  special          = true
  override_special = "!&#$^<>-"
}

resource "aws_kms_key" "this" {
  count                   = var.kms_key_arn == "" ? 1 : 0
  description             = "${var.name}: ElastiCache at-rest encryption"
  deletion_window_in_days = 30
  enable_key_rotation     = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministers"
      Effect    = "Allow"
      Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
  tags = local.tags
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  tags        = merge({ "app" = "vllm-fleet-gateway" }, var.tags)
  kms_key_arn = var.kms_key_arn != "" ? var.kms_key_arn : aws_kms_key.this[0].arn
}

resource "aws_elasticache_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
  tags       = local.tags
}

resource "aws_security_group" "this" {
  name        = "${var.name}-redis"
  description = "Redis of the vLLM fleet gateway: reachable from the EKS nodes only"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-redis" })
}

resource "aws_vpc_security_group_ingress_rule" "from_nodes" {
  for_each = toset(var.allowed_security_group_ids)

  security_group_id            = aws_security_group.this.id
  description                  = "Redis (TLS) from the gateway's nodes"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
}

resource "aws_elasticache_replication_group" "this" {
  #checkov:skip=CKV_AWS_134:The gateway's fleet state is soft (leases, latency averages, a prefix index with a TTL) and rebuilds itself within seconds; a backup would restore stale state.
  replication_group_id = var.name
  description          = "Shared fleet state of the vLLM fleet gateway"
  engine               = "redis"
  engine_version       = var.engine_version
  node_type            = var.node_type
  port                 = var.port
  num_cache_clusters   = var.num_cache_clusters
  parameter_group_name = "default.redis${split(".", var.engine_version)[0]}"

  automatic_failover_enabled = true
  multi_az_enabled           = true

  subnet_group_name  = aws_elasticache_subnet_group.this.name
  security_group_ids = [aws_security_group.this.id]

  transit_encryption_enabled = true
  auth_token                 = random_password.auth.result
  at_rest_encryption_enabled = true
  kms_key_id                 = local.kms_key_arn

  snapshot_retention_limit   = 0
  auto_minor_version_upgrade = true
  maintenance_window         = "sun:03:00-sun:04:00"
  apply_immediately          = false

  tags = local.tags
}

locals {
  # The URL the gateway connects with (coordination.redis_url): TLS, verified against the public CAs that
  # sign ElastiCache's certificates (host name included); the token comes separately
  # (GATEWAY_COORDINATION__PASSWORD, from the auth_token output).
  redis_url = "rediss://${aws_elasticache_replication_group.this.primary_endpoint_address}:${var.port}/0"
}
