output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "region" {
  description = "Region of the cluster."
  value       = data.aws_region.current.name
}

output "endpoint" {
  description = "API server endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_security_group_id" {
  description = "Security group EKS attaches to the control plane and the managed nodes: the one allowed to reach ElastiCache (modules/elasticache-redis)."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "vpc_id" {
  description = "VPC of the cluster."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Private subnets of the cluster (and of ElastiCache's subnet group)."
  value       = aws_subnet.private[*].id
}

output "kms_key_arn" {
  description = "KMS key of the cluster (Secrets, logs, node volumes); reusable for ElastiCache at-rest encryption."
  value       = aws_kms_key.this.arn
}

output "update_kubeconfig_command" {
  description = "The command that points kubectl at the cluster."
  value       = "aws eks update-kubeconfig --name ${aws_eks_cluster.this.name} --region ${data.aws_region.current.name}"
}

output "gpu_node_selector" {
  description = "Node labels that place a pod on the GPU node group (deploy/overlays/eks sets this nodeSelector on vLLM)."
  value       = { "accelerator" = var.gpu_node_label }
}

output "gpu_node_taint" {
  description = "Taint of the GPU node group (the vLLM Deployment of deploy/base tolerates it)."
  value       = local.gpu_taint
}
