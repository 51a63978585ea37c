output "cluster_name" {
  description = "Name of the GKE cluster."
  value       = google_container_cluster.this.name
}

output "location" {
  description = "Region of the cluster (gcloud container clusters get-credentials --region)."
  value       = google_container_cluster.this.location
}

output "endpoint" {
  description = "Public endpoint of the control plane."
  value       = google_container_cluster.this.endpoint
  sensitive   = true
}

output "network_id" {
  description = "VPC network of the cluster; Memorystore's authorized_network (modules/memorystore-redis)."
  value       = google_compute_network.this.id
}

output "get_credentials_command" {
  description = "The command that points kubectl at the cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.this.name} --region ${google_container_cluster.this.location} --project ${var.project_id}"
}

output "gpu_node_selector" {
  description = "Node labels that place a pod on the GPU node pool (deploy/overlays/gke sets this nodeSelector on vLLM)."
  value       = { "cloud.google.com/gke-accelerator" = var.gpu_accelerator_type }
}
