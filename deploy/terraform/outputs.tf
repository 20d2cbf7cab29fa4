output "service_accounts" {
  description = "Google service accounts for the Workload Identity annotations of the gke overlay."
  value = {
    "event-service" = google_service_account.ingest.email
    "exporter"      = google_service_account.exporter.email
  }
}

output "subscriptions" {
  description = "Subscriptions created, for the exporter's HPA selectors."
  value       = keys(google_pubsub_subscription.event)
}

output "bucket" {
  description = "The bucket of the hourly buckets."
  value       = google_storage_bucket.events.url
}
