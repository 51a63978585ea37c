terraform {
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6, < 4.0"
    }
  }

  # Remote state in an S3 bucket (versioned, encrypted) with S3-native locking (Terraform >= 1.10). The bucket
  # is not created here: create it once, copy backend.hcl.example to backend.hcl, then
  #   terraform init -backend-config=backend.hcl
  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      "app"        = "vllm-fleet-gateway"
      "managed-by" = "terraform"
    }
  }
}
