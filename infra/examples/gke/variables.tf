variable "project_id" {
  description = "Google Cloud project to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID."
  }
}

variable "region" {
  description = "Region of the cluster, the Redis instance and the image repository (one with L4 GPUs, e.g. us-central1)."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1."
  }
}

variable "gpu_zones" {
  description = "Zones of the region that offer L4 GPUs."
  type        = list(string)
  default     = ["us-central1-a", "us-central1-b", "us-central1-c"]

  validation {
    condition     = length(var.gpu_zones) > 0
    error_message = "gpu_zones must list at least one zone."
  }
}

variable "master_authorized_networks" {
  description = "CIDR blocks allowed to reach the cluster's API (your workstation or CI egress, e.g. 203.0.113.4/32)."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))

  validation {
    condition     = length(var.master_authorized_networks) > 0
    error_message = "List at least one network, or kubectl cannot reach the private cluster from outside the VPC."
  }
}

variable "name" {
  description = "Name of the cluster, the Redis instance and the image repository."
  type        = string
  default     = "vllm-gateway"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,25}[a-z0-9])?$", var.name))
    error_message = "name must be 1-27 lowercase letters, digits or hyphens, starting with a letter."
  }
}
