variable "region" {
  description = "AWS region of the cluster, the Redis replication group and the image repository (one with g4dn instances)."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region such as us-east-1."
  }
}

variable "name" {
  description = "Name of the cluster, the Redis replication group and the image repository."
  type        = string
  default     = "vllm-gateway"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,37}[a-z0-9]$", var.name))
    error_message = "name must be 2-39 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "public_access_cidrs" {
  description = "CIDR blocks allowed to reach the cluster's API (your workstation or CI egress, e.g. 203.0.113.4/32)."
  type        = list(string)

  validation {
    condition     = length(var.public_access_cidrs) > 0 && !contains(var.public_access_cidrs, "0.0.0.0/0")
    error_message = "List at least one CIDR block, and not 0.0.0.0/0."
  }
}
