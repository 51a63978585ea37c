terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.20, < 8.0"
    }
  }

  # Remote state in a GCS bucket (versioned, with state locking). The bucket is not created here: create it
  # once (gcloud storage buckets create gs://BUCKET --location=REGION --uniform-bucket-level-access &&
  # gcloud storage buckets update gs://BUCKET --versioning), copy backend.hcl.example to backend.hcl, then
  #   terraform init -backend-config=backend.hcl
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}
