variable "name" {
  description = "Cluster name; also the prefix (and Name tag) of the VPC, subnets, roles, keys and node groups."
  type        = string
  default     = "vllm-gateway"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,37}$", var.name))
    error_message = "name must be 1-38 letters, digits or hyphens, starting with a letter."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane and node groups (deploy/ is validated against it by tests/deploy)."
  type        = string
  default     = "1.33"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must be a minor version such as 1.33."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the cluster's VPC; split into three public and three private subnets."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be an IPv4 CIDR block of /20 or larger."
  }
}

variable "availability_zones" {
  description = "Three availability zones for the subnets. Empty: the region's first three."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zones) == 0 || length(var.availability_zones) == 3
    error_message = "availability_zones must be empty or list exactly three zones."
  }
}

variable "public_access_cidrs" {
  description = "CIDR blocks allowed to reach the public API endpoint (your workstation or CI egress); the nodes use the private endpoint."
  type        = list(string)

  validation {
    condition     = length(var.public_access_cidrs) > 0 && alltrue([for c in var.public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "public_access_cidrs must list at least one IPv4 CIDR block, and not 0.0.0.0/0."
  }
}

variable "system_instance_types" {
  description = "Instance types of the system node group (the gateway, cluster add-ons)."
  type        = list(string)
  default     = ["m6i.large"]

  validation {
    condition     = length(var.system_instance_types) > 0 && alltrue([for t in var.system_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "system_instance_types must list EC2 instance types such as m6i.large."
  }
}

variable "system_nodes" {
  description = "Minimum, desired and maximum size of the system node group."
  type = object({
    min     = number
    desired = number
    max     = number
  })
  default = {
    min     = 2
    desired = 3
    max     = 6
  }

  validation {
    condition     = var.system_nodes.min >= 1 && var.system_nodes.min <= var.system_nodes.desired && var.system_nodes.desired <= var.system_nodes.max
    error_message = "system_nodes needs 1 <= min <= desired <= max."
  }
}

variable "gpu_instance_types" {
  description = "Instance types of the GPU node group (g4dn: one NVIDIA T4 on the .xlarge to .8xlarge sizes)."
  type        = list(string)
  default     = ["g4dn.xlarge"]

  validation {
    condition     = length(var.gpu_instance_types) > 0 && alltrue([for t in var.gpu_instance_types : can(regex("^(g4dn|g5|g6|g6e|p4d|p5)\\.[a-z0-9]+$", t))])
    error_message = "gpu_instance_types must list NVIDIA GPU instance types (g4dn, g5, g6, g6e, p4d, p5 families)."
  }
}

variable "gpu_nodes" {
  description = "Minimum, desired and maximum size of the GPU node group (one vLLM pod per GPU)."
  type = object({
    min     = number
    desired = number
    max     = number
  })
  default = {
    min     = 2
    desired = 2
    max     = 4
  }

  validation {
    condition     = var.gpu_nodes.min >= 0 && var.gpu_nodes.min <= var.gpu_nodes.desired && var.gpu_nodes.desired <= var.gpu_nodes.max && var.gpu_nodes.max > 0
    error_message = "gpu_nodes needs 0 <= min <= desired <= max and max > 0."
  }
}

variable "gpu_capacity_type" {
  description = "ON_DEMAND or SPOT capacity for the GPU node group."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.gpu_capacity_type)
    error_message = "gpu_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "gpu_node_label" {
  description = "Value of the accelerator node label on the GPU node group, which deploy/overlays/eks selects."
  type        = string
  default     = "nvidia-t4"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$", var.gpu_node_label))
    error_message = "gpu_node_label must be a valid Kubernetes label value."
  }
}

variable "log_retention_days" {
  description = "Retention of the control plane and VPC flow logs in CloudWatch."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch retention value (1, 3, 5, 7, 14, 30, 60, 90, ..., 365, ...)."
  }
}

variable "tags" {
  description = "Tags put on every resource that takes tags."
  type        = map(string)
  default     = {}
}
