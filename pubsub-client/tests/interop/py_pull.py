"""Pulls COUNT messages with Google's official Python client (gRPC) and acks them.

Usage: py_pull.py PROJECT SUBSCRIPTION COUNT TIMEOUT_SECS   (PUBSUB_EMULATOR_HOST must be set)
Prints one JSON object per message: message_id, data (base64), attributes, ordering_key.
Exits non-zero if fewer than COUNT messages arrived before the timeout.
"""
import base64
import json
import sys
import time

from google.api_core import exceptions
from google.cloud import pubsub_v1


def main() -> None:
    project, sub, count, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, sub)
    deadline = time.monotonic() + timeout
    seen = 0
    while seen < count and time.monotonic() < deadline:
        try:
            resp = subscriber.pull(request={"subscription": path, "max_messages": 1000}, timeout=5)
        except exceptions.DeadlineExceeded:
            continue
        if not resp.received_messages:
            continue
        for r in resp.received_messages:
            m = r.message
            print(json.dumps({
                "message_id": m.message_id,
                "data": base64.b64encode(m.data).decode(),
                "attributes": dict(m.attributes),
                "ordering_key": m.ordering_key,
            }))
            seen += 1
        subscriber.acknowledge(request={"subscription": path, "ack_ids": [r.ack_id for r in resp.received_messages]})
    sys.stdout.flush()
    if seen < count:
        sys.exit(f"only {seen} of {count} messages arrived within {timeout}s")


if __name__ == "__main__":
    main()
