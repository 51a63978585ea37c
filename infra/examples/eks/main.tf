# The EKS side of docs/deploy.md: a cluster with a T4 node group, ElastiCache for Redis (AUTH, TLS) and an
# ECR repository for the gateway image. Its outputs fill deploy/overlays/eks.

module "cluster" {
  source = "../../modules/eks-cluster"

  name                = var.name
  public_access_cidrs = var.public_access_cidrs
}

module "redis" {
  source = "../../modules/elasticache-redis"

  name                       = var.name
  vpc_id                     = module.cluster.vpc_id
  subnet_ids                 = module.cluster.private_subnet_ids
  allowed_security_group_ids = [module.cluster.cluster_security_group_id]
  kms_key_arn                = module.cluster.kms_key_arn
}

resource "aws_ecr_repository" "gateway" {
  name                 = "vllm-fleet-gateway"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = module.cluster.kms_key_arn
  }
}
