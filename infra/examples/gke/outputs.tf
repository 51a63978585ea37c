output "cluster_name" {
  description = "Name of the GKE cluster."
  value       = module.cluster.cluster_name
}

output "get_credentials_command" {
  description = "Points kubectl at the cluster."
  value       = module.cluster.get_credentials_command
}

output "image_repository" {
  description = "Where to push the gateway image: the newName of vllm-fleet-gateway in deploy/overlays/gke/kustomization.yaml."
  value       = "${google_artifact_registry_repository.gateway.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.gateway.repository_id}/vllm-fleet-gateway"
}

output "gateway_redis_env" {
  description = "Contents of deploy/overlays/gke/redis.env (terraform output -raw gateway_redis_env > .../redis.env)."
  value       = module.redis.gateway_redis_env
}

output "redis_auth_string" {
  description = "Memorystore AUTH password, for the gateway-redis-auth Secret."
  value       = module.redis.auth_string
  sensitive   = true
}

output "redis_ca_certificate" {
  description = "Memorystore server CA (PEM), for the gateway-redis-ca ConfigMap."
  value       = module.redis.ca_certificate
}

output "gpu_node_selector" {
  description = "The nodeSelector deploy/overlays/gke puts on vLLM."
  value       = module.cluster.gpu_node_selector
}
