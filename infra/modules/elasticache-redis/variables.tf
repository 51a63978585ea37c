variable "name" {
  description = "Replication group ID; also the prefix of its subnet group, security group and KMS alias."
  type        = string
  default     = "vllm-gateway"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,38}[a-z0-9]$", var.name)) && !strcontains(var.name, "--")
    error_message = "name must be 2-40 lowercase letters, digits or single hyphens, starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC of the EKS cluster (modules/eks-cluster output vpc_id)."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must be a VPC ID (vpc-...)."
  }
}

variable "subnet_ids" {
  description = "Private subnets for the cache nodes, in at least two availability zones (modules/eks-cluster output private_subnet_ids)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids must list at least two subnet IDs (subnet-...)."
  }
}

variable "allowed_security_group_ids" {
  description = "Security groups whose members may connect (the EKS cluster security group that the managed nodes carry)."
  type        = list(string)

  validation {
    condition     = length(var.allowed_security_group_ids) > 0 && alltrue([for s in var.allowed_security_group_ids : can(regex("^sg-[0-9a-f]+$", s))])
    error_message = "allowed_security_group_ids must list at least one security group ID (sg-...)."
  }
}

variable "node_type" {
  description = "Cache node type. The gateway's fleet state is small: the smallest types serve large fleets."
  type        = string
  default     = "cache.t4g.small"

  validation {
    condition     = can(regex("^cache\\.[a-z0-9]+\\.[a-z0-9]+$", var.node_type))
    error_message = "node_type must be an ElastiCache node type such as cache.t4g.small."
  }
}

variable "engine_version" {
  description = "Redis engine version."
  type        = string
  default     = "7.1"

  validation {
    condition     = can(regex("^[6-9]\\.[0-9x]+$", var.engine_version))
    error_message = "engine_version must be a Redis version of 6 or later, such as 7.1."
  }
}

variable "num_cache_clusters" {
  description = "Nodes in the replication group: a primary and replicas in other zones; 2 or more enables automatic failover."
  type        = number
  default     = 2

  validation {
    condition     = var.num_cache_clusters >= 2 && var.num_cache_clusters <= 6
    error_message = "num_cache_clusters must be between 2 and 6 (automatic failover needs a replica)."
  }
}

variable "port" {
  description = "Port of the Redis endpoint."
  type        = number
  default     = 6379

  validation {
    condition     = var.port >= 1024 && var.port <= 65535
    error_message = "port must be between 1024 and 65535."
  }
}

variable "kms_key_arn" {
  description = "KMS key for at-rest encryption (e.g. modules/eks-cluster output kms_key_arn). Empty: the module creates one."
  type        = string
  default     = ""

  validation {
    condition     = var.kms_key_arn == "" || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be empty or a KMS key ARN."
  }
}

variable "tags" {
  description = "Tags put on every resource that takes tags."
  type        = map(string)
  default     = {}
}
