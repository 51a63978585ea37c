variable "project_id" {
  description = "Google Cloud project of the instance."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of the instance: the cluster's, so the gateway reaches it without leaving the region."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1."
  }
}

variable "name" {
  description = "Instance ID (also shown as its name in the console)."
  type        = string
  default     = "vllm-gateway"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.name))
    error_message = "name must be 1-40 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "network_id" {
  description = "VPC network allowed to reach the instance: the GKE cluster's (modules/gke-cluster output network_id)."
  type        = string

  validation {
    condition     = can(regex("^projects/[^/]+/global/networks/[^/]+$", var.network_id))
    error_message = "network_id must be a network ID such as projects/PROJECT/global/networks/NAME."
  }
}

variable "tier" {
  description = "STANDARD_HA: a primary and a replica in another zone with automatic failover. BASIC: one node, no failover."
  type        = string
  default     = "STANDARD_HA"

  validation {
    condition     = contains(["BASIC", "STANDARD_HA"], var.tier)
    error_message = "tier must be BASIC or STANDARD_HA."
  }
}

variable "memory_size_gb" {
  description = "Memory of the instance in GiB. The gateway's fleet state is small (leases, latency averages, a prefix index with a TTL): 1 GiB serves large fleets."
  type        = number
  default     = 1

  validation {
    condition     = var.memory_size_gb >= 1 && var.memory_size_gb <= 300
    error_message = "memory_size_gb must be between 1 and 300."
  }
}

variable "redis_version" {
  description = "Redis version of the instance."
  type        = string
  default     = "REDIS_7_2"

  validation {
    condition     = can(regex("^REDIS_[0-9]+_[0-9X]+$", var.redis_version))
    error_message = "redis_version must look like REDIS_7_2."
  }
}

variable "ca_cert_path" {
  description = "Where the gateway container finds the instance's CA certificate (the gateway-redis-ca ConfigMap mounted by deploy/overlays/gke)."
  type        = string
  default     = "/etc/gateway/redis-ca/ca.pem"

  validation {
    condition     = startswith(var.ca_cert_path, "/")
    error_message = "ca_cert_path must be an absolute path."
  }
}

variable "labels" {
  description = "Labels put on the instance."
  type        = map(string)
  default     = {}
}
