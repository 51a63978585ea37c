# The GKE side of docs/deploy.md: a regional cluster with an L4 node pool, Memorystore for Redis (AUTH, TLS)
# and an Artifact Registry repository for the gateway image. Its outputs fill deploy/overlays/gke.

resource "google_project_service" "this" {
  for_each = toset([
    "compute.googleapis.com",
    "container.googleapis.com",
    "redis.googleapis.com",
    "artifactregistry.googleapis.com",
    "file.googleapis.com",
  ])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

module "cluster" {
  source = "../../modules/gke-cluster"

  project_id                 = var.project_id
  region                     = var.region
  name                       = var.name
  gpu_zones                  = var.gpu_zones
  master_authorized_networks = var.master_authorized_networks

  depends_on = [google_project_service.this]
}

module "redis" {
  source = "../../modules/memorystore-redis"

  project_id = var.project_id
  region     = var.region
  name       = var.name
  network_id = module.cluster.network_id

  depends_on = [google_project_service.this]
}

resource "google_artifact_registry_repository" "gateway" {
  #checkov:skip=CKV_GCP_84:The repository holds a public open-source image; Google-managed encryption is enough and a CMEK key ring would outlive `terraform destroy`.
  project       = var.project_id
  location      = var.region
  repository_id = var.name
  description   = "Images of the vLLM fleet gateway"
  format        = "DOCKER"

  docker_config {
    immutable_tags = true
  }

  depends_on = [google_project_service.this]
}
