output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = module.cluster.cluster_name
}

output "update_kubeconfig_command" {
  description = "Points kubectl at the cluster."
  value       = module.cluster.update_kubeconfig_command
}

output "image_repository" {
  description = "Where to push the gateway image: the newName of vllm-fleet-gateway in deploy/overlays/eks/kustomization.yaml."
  value       = aws_ecr_repository.gateway.repository_url
}

output "gateway_redis_env" {
  description = "Contents of deploy/overlays/eks/redis.env (terraform output -raw gateway_redis_env > .../redis.env)."
  value       = module.redis.gateway_redis_env
}

output "redis_auth_token" {
  description = "ElastiCache AUTH token, for the gateway-redis-auth Secret."
  value       = module.redis.auth_token
  sensitive   = true
}

output "gpu_node_selector" {
  description = "The nodeSelector deploy/overlays/eks puts on vLLM."
  value       = module.cluster.gpu_node_selector
}
