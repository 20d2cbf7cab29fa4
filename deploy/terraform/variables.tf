variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Location of the bucket (and of the Artifact Registry repository)."
  type        = string
  default     = "europe-west1"
}

variable "bucket" {
  description = "Name of the GCS bucket the exporter writes hourly buckets to."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of event-service and exporter (Workload Identity bindings)."
  type        = string
  default     = "eventpipe"
}

variable "event_types" {
  description = "Event types from the registry: topic and subscription suffixes. Generated into event_types.auto.tfvars.json by gen_event_types.py."
  type = map(object({
    topic         = string
    subscriptions = list(string)
  }))
}

variable "ack_deadline_seconds" {
  description = "Ack deadline of the subscriptions; the exporter's close.idle_secs and close.allowed_lateness_secs must exceed it."
  type        = number
  default     = 60
}

variable "message_retention" {
  description = "How long Pub/Sub keeps unacknowledged messages (the outage an exporter may have and catch up from)."
  type        = string
  default     = "604800s" # 7 days, the maximum
}

variable "max_delivery_attempts" {
  description = "Deliveries before a message goes to its subscription's dead-letter topic."
  type        = number
  default     = 20
}
