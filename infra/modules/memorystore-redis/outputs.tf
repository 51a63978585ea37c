output "host" {
  description = "IP address of the instance's primary endpoint."
  value       = google_redis_instance.this.host
}

output "port" {
  description = "Port of the instance (6378 with in-transit encryption)."
  value       = google_redis_instance.this.port
}

output "redis_url" {
  description = "coordination.redis_url for the gateway (rediss://, with the CA path and without the password)."
  value       = local.redis_url
}

output "gateway_redis_env" {
  description = "The env file of the gateway-redis ConfigMap: write it to deploy/overlays/gke/redis.env."
  value       = "GATEWAY_COORDINATION__REDIS_URL=${local.redis_url}\n"
}

output "auth_string" {
  description = "The instance's AUTH password: the gateway-redis-auth Secret (key password)."
  value       = google_redis_instance.this.auth_string
  sensitive   = true
}

output "ca_certificate" {
  description = "PEM certificate of the CA that signs the instance's server certificate: the gateway-redis-ca ConfigMap (key ca.pem)."
  value       = google_redis_instance.this.server_ca_certs[0].cert
}
