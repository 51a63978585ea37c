output "primary_endpoint" {
  description = "DNS name of the primary endpoint (follows failovers)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "port" {
  description = "Port of the Redis endpoint."
  value       = var.port
}

output "redis_url" {
  description = "coordination.redis_url for the gateway (rediss://, without the token)."
  value       = local.redis_url
}

output "gateway_redis_env" {
  description = "The env file of the gateway-redis ConfigMap: write it to deploy/overlays/eks/redis.env."
  value       = "GATEWAY_COORDINATION__REDIS_URL=${local.redis_url}\n"
}

output "auth_token" {
  description = "The AUTH token: the gateway-redis-auth Secret (key password)."
  value       = random_password.auth.result
  sensitive   = true
}

output "security_group_id" {
  description = "Security group of the cache nodes."
  value       = aws_security_group.this.id
}
