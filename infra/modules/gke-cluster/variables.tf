variable "project_id" {
  description = "Google Cloud project that holds the cluster and its network."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of the regional cluster (its control plane and default node locations span the region's zones)."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1."
  }
}

variable "name" {
  description = "Cluster name; also the prefix of the network, subnetwork, router and node service account."
  type        = string
  default     = "vllm-gateway"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,25}[a-z0-9])?$", var.name))
    error_message = "name must be 1-27 lowercase letters, digits or hyphens, starting with a letter (it prefixes other resource names)."
  }
}

variable "release_channel" {
  description = "GKE release channel that picks and upgrades the Kubernetes version."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "subnet_cidr" {
  description = "Primary range of the cluster's subnetwork (the nodes' addresses)."
  type        = string
  default     = "10.10.0.0/20"

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0))
    error_message = "subnet_cidr must be an IPv4 CIDR block."
  }
}

variable "pods_cidr" {
  description = "Secondary range for pod addresses (VPC-native cluster)."
  type        = string
  default     = "10.20.0.0/14"

  validation {
    condition     = can(cidrhost(var.pods_cidr, 0))
    error_message = "pods_cidr must be an IPv4 CIDR block."
  }
}

variable "services_cidr" {
  description = "Secondary range for Service cluster IPs."
  type        = string
  default     = "10.24.0.0/20"

  validation {
    condition     = can(cidrhost(var.services_cidr, 0))
    error_message = "services_cidr must be an IPv4 CIDR block."
  }
}

variable "master_ipv4_cidr" {
  description = "/28 range of the private control plane's peering (must not overlap the ranges above)."
  type        = string
  default     = "172.16.0.0/28"

  validation {
    condition     = can(cidrhost(var.master_ipv4_cidr, 0)) && endswith(var.master_ipv4_cidr, "/28")
    error_message = "master_ipv4_cidr must be an IPv4 /28 block."
  }
}

variable "master_authorized_networks" {
  description = "CIDR blocks allowed to reach the control plane's public endpoint (your workstation or CI egress). Empty: none outside the VPC."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  default = []

  validation {
    condition     = alltrue([for n in var.master_authorized_networks : can(cidrhost(n.cidr_block, 0)) && n.cidr_block != "0.0.0.0/0"])
    error_message = "Every master_authorized_networks cidr_block must be an IPv4 CIDR block other than 0.0.0.0/0."
  }
}

variable "system_machine_type" {
  description = "Machine type of the system node pool (the gateway, Redis clients, cluster add-ons)."
  type        = string
  default     = "e2-standard-4"

  validation {
    condition     = can(regex("^[a-z0-9]+-[a-z0-9]+(-[0-9]+)?$", var.system_machine_type))
    error_message = "system_machine_type must be a Compute Engine machine type such as e2-standard-4."
  }
}

variable "system_nodes_per_zone" {
  description = "Minimum and maximum system nodes in each zone of the region (autoscaled in between)."
  type = object({
    min = number
    max = number
  })
  default = {
    min = 1
    max = 3
  }

  validation {
    condition     = var.system_nodes_per_zone.min >= 1 && var.system_nodes_per_zone.max >= var.system_nodes_per_zone.min
    error_message = "system_nodes_per_zone needs min >= 1 and max >= min."
  }
}

variable "gpu_accelerator_type" {
  description = "GPU of the vLLM node pool. GKE labels its nodes cloud.google.com/gke-accelerator=<this>, which deploy/overlays/gke selects."
  type        = string
  default     = "nvidia-l4"

  validation {
    condition     = contains(["nvidia-l4", "nvidia-tesla-t4", "nvidia-tesla-a100", "nvidia-a100-80gb", "nvidia-h100-80gb"], var.gpu_accelerator_type)
    error_message = "gpu_accelerator_type must be one of nvidia-l4, nvidia-tesla-t4, nvidia-tesla-a100, nvidia-a100-80gb, nvidia-h100-80gb."
  }
}

variable "gpu_machine_type" {
  description = "Machine type of the GPU node pool; it must fit the accelerator (L4: the G2 series)."
  type        = string
  default     = "g2-standard-8"

  validation {
    condition     = can(regex("^[a-z0-9]+-[a-z0-9]+(-[0-9]+)?$", var.gpu_machine_type))
    error_message = "gpu_machine_type must be a Compute Engine machine type such as g2-standard-8."
  }
}

variable "gpus_per_node" {
  description = "GPUs attached to each GPU node (one vLLM pod uses one)."
  type        = number
  default     = 1

  validation {
    condition     = contains([1, 2, 4, 8], var.gpus_per_node)
    error_message = "gpus_per_node must be 1, 2, 4 or 8."
  }
}

variable "gpu_zones" {
  description = "Zones of the region where the GPU node pool may create nodes (where the accelerator is offered)."
  type        = list(string)
  default     = ["us-central1-a", "us-central1-b", "us-central1-c"]

  validation {
    condition     = length(var.gpu_zones) > 0 && alltrue([for z in var.gpu_zones : can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", z))])
    error_message = "gpu_zones must list at least one zone such as us-central1-a."
  }
}

variable "gpu_nodes" {
  description = "Minimum and maximum GPU nodes over all gpu_zones (the autoscaler places them where capacity is)."
  type = object({
    min = number
    max = number
  })
  default = {
    min = 2
    max = 4
  }

  validation {
    condition     = var.gpu_nodes.min >= 0 && var.gpu_nodes.max >= var.gpu_nodes.min && var.gpu_nodes.max > 0
    error_message = "gpu_nodes needs min >= 0, max >= min and max > 0."
  }
}

variable "gpu_driver_version" {
  description = "NVIDIA driver that GKE's driver installer puts on the GPU nodes (INSTALLATION_DISABLED: install it yourself)."
  type        = string
  default     = "LATEST"

  validation {
    condition     = contains(["DEFAULT", "LATEST", "INSTALLATION_DISABLED"], var.gpu_driver_version)
    error_message = "gpu_driver_version must be DEFAULT, LATEST or INSTALLATION_DISABLED."
  }
}

variable "gpu_spot" {
  description = "Run the GPU nodes as Spot VMs (cheaper, can be reclaimed at any time)."
  type        = bool
  default     = false
}

variable "labels" {
  description = "Labels put on the cluster, its nodes and its network resources that take labels."
  type        = map(string)
  default     = {}
}

variable "deletion_protection" {
  description = "Refuse `terraform destroy` of the cluster until this is set to false and applied."
  type        = bool
  default     = true
}
