# Memorystore for Redis for the gateway's shared fleet state: AUTH on, in-transit encryption (TLS with the
# instance's own CA, port 6378), reachable only from the cluster's VPC network. The state is soft (it rebuilds
# itself within seconds), so neither persistence nor backups are configured.

resource "google_redis_instance" "this" {
  project            = var.project_id
  name               = var.name
  region             = var.region
  tier               = var.tier
  memory_size_gb     = var.memory_size_gb
  redis_version      = var.redis_version
  authorized_network = var.network_id
  connect_mode       = "DIRECT_PEERING"

  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"

  labels = merge({ "app" = "vllm-fleet-gateway" }, var.labels)

  maintenance_policy {
    weekly_maintenance_window {
      day = "SUNDAY"
      start_time {
        hours   = 3
        minutes = 0
      }
    }
  }
}

locals {
  # The URL the gateway connects with (coordination.redis_url): TLS, verified against the instance's CA;
  # the password comes separately (GATEWAY_COORDINATION__PASSWORD, from the auth_string output). Host name
  # checking is off: the instance is addressed by IP, which its certificate does not carry as a
  # subjectAltName; the per-instance CA is what authenticates the server.
  redis_url = "rediss://${google_redis_instance.this.host}:${google_redis_instance.this.port}/0?ssl_ca_certs=${var.ca_cert_path}&ssl_check_hostname=false"
}
