# Everything the pipeline needs in a Google Cloud project, generated from the event-type
# registry: a topic per type, the subscriptions the registry lists (with retention and a
# dead-letter topic), the event-service's dead-letter topic, the bucket, and the two service
# accounts with the least privilege each needs, bound to the Kubernetes service accounts
# through Workload Identity.

provider "google" {
  project = var.project
}

locals {
  subscriptions = merge([
    for name, t in var.event_types : {
      for suffix in t.subscriptions : "${t.topic}-${suffix}" => { type = name }
    }
  ]...)
  # The exporter's work in progress (parts, seals, commit records, heartbeats), below the
  # bucket's root (the exporter's [storage] prefix is unset; with one, prepend it here).
  # Everything else it writes (hour folders `<type>/<date>/<hour>/`, `_dedup/`) is create-only.
  staging_prefix = "_staging/"
}

resource "google_pubsub_topic" "event" {
  for_each                   = var.event_types
  name                       = each.value.topic
  message_retention_duration = var.message_retention
  labels                     = { "app" = "eventpipe", "event-type" = each.key }
}

# Events the event-service rejects (dead_letter_topic in event-service.toml), with a
# subscription so they are kept for inspection.
resource "google_pubsub_topic" "rejected" {
  name = "events-dead-letter"
}

resource "google_pubsub_subscription" "rejected_inspect" {
  name                       = "events-dead-letter-inspect"
  topic                      = google_pubsub_topic.rejected.id
  message_retention_duration = var.message_retention
}

# Messages a subscriber failed on max_delivery_attempts times.
resource "google_pubsub_topic" "undeliverable" {
  for_each = local.subscriptions
  name     = "${each.key}-dead-letter"
}

resource "google_pubsub_subscription" "undeliverable_inspect" {
  for_each                   = local.subscriptions
  name                       = "${each.key}-dead-letter-inspect"
  topic                      = google_pubsub_topic.undeliverable[each.key].id
  message_retention_duration = var.message_retention
}

resource "google_pubsub_subscription" "event" {
  for_each                   = local.subscriptions
  name                       = each.key
  topic                      = google_pubsub_topic.event[each.value.type].id
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = var.message_retention
  retain_acked_messages      = false
  expiration_policy {
    ttl = "" # never expires
  }
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.undeliverable[each.key].id
    max_delivery_attempts = var.max_delivery_attempts
  }
}

resource "google_storage_bucket" "events" {
  name                        = var.bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = false # objects are create-only; a manifest lists what readers may trust
  }
  # A safety net: the exporter deletes an hour's staging objects once the hour is closed, and
  # closes every hour within Pub/Sub's 7 days' retention; whatever is left older than that
  # (a crash between a close and its clean-up) goes after 8 days. Heartbeats are rewritten
  # every few seconds, so they are always younger.
  lifecycle_rule {
    condition {
      age            = 8
      matches_prefix = [local.staging_prefix]
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_service_account" "ingest" {
  account_id   = "eventpipe-ingest"
  display_name = "eventpipe event-service (publishes events)"
}

resource "google_service_account" "exporter" {
  account_id   = "eventpipe-exporter"
  display_name = "eventpipe exporter (subscribes, writes hourly buckets)"
}

resource "google_pubsub_topic_iam_member" "ingest_publishes" {
  for_each = var.event_types
  topic    = google_pubsub_topic.event[each.key].id
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${google_service_account.ingest.email}"
}

resource "google_pubsub_topic_iam_member" "ingest_dead_letters" {
  topic  = google_pubsub_topic.rejected.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.ingest.email}"
}

resource "google_pubsub_subscription_iam_member" "exporter_subscribes" {
  for_each     = { for k, v in local.subscriptions : k => v if endswith(k, "-exporter") }
  subscription = google_pubsub_subscription.event[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${google_service_account.exporter.email}"
}

# The exporter reads its subscriptions' ack deadline at start.
resource "google_pubsub_subscription_iam_member" "exporter_views" {
  for_each     = { for k, v in local.subscriptions : k => v if endswith(k, "-exporter") }
  subscription = google_pubsub_subscription.event[each.key].id
  role         = "roles/pubsub.viewer"
  member       = "serviceAccount:${google_service_account.exporter.email}"
}

# The exporter creates and reads objects anywhere in the bucket, and deletes (or overwrites,
# which needs delete on the object replaced) only under the staging prefix. Hour folders and
# `_dedup/` are create-only for it: objectCreator has no storage.objects.delete, so GCS refuses
# an overwrite or a delete there whatever the exporter asks.
resource "google_storage_bucket_iam_member" "exporter_writes" {
  bucket = google_storage_bucket.events.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.exporter.email}"
}

resource "google_storage_bucket_iam_member" "exporter_reads" {
  bucket = google_storage_bucket.events.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.exporter.email}"
}

resource "google_project_iam_custom_role" "staging_deleter" {
  role_id     = "eventpipeStagingDeleter"
  title       = "eventpipe staging deleter"
  description = "Delete objects; granted on the events bucket only under its staging prefix (IAM condition)."
  permissions = ["storage.objects.delete"]
}

# IAM conditions on a bucket need uniform bucket-level access (set on the bucket above).
resource "google_storage_bucket_iam_member" "exporter_deletes_staging" {
  bucket = google_storage_bucket.events.name
  role   = google_project_iam_custom_role.staging_deleter.id
  member = "serviceAccount:${google_service_account.exporter.email}"
  condition {
    title       = "staging-only"
    description = "Only objects under ${local.staging_prefix}"
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.events.name}/objects/${local.staging_prefix}\")"
  }
}

# Pub/Sub's service agent forwards undeliverable messages to the dead-letter topics.
data "google_project" "this" {}

resource "google_pubsub_topic_iam_member" "agent_dead_letters" {
  for_each = local.subscriptions
  topic    = google_pubsub_topic.undeliverable[each.key].id
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_subscription_iam_member" "agent_acks_dead_letters" {
  for_each     = local.subscriptions
  subscription = google_pubsub_subscription.event[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_service_account_iam_member" "ingest_workload_identity" {
  service_account_id = google_service_account.ingest.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project}.svc.id.goog[${var.namespace}/event-service]"
}

resource "google_service_account_iam_member" "exporter_workload_identity" {
  service_account_id = google_service_account.exporter.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project}.svc.id.goog[${var.namespace}/exporter]"
}
