"""Publishes COUNT messages with Google's official Python client (gRPC).

Usage: py_publish.py PROJECT TOPIC COUNT   (PUBSUB_EMULATOR_HOST must be set)
Message i carries data expected_data(i) and attributes seq, origin, text; an ordering key
for every third message. Prints the message ids as one JSON array.
"""
import json
import sys

from google.cloud import pubsub_v1

TEXT = 'é ✓ "quoted" \\ back\nnew'


def expected_data(i: int) -> bytes:
    return bytes((j * 31 + i) % 256 for j in range(i % 300 + 1))


def main() -> None:
    project, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    options = pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    publisher = pubsub_v1.PublisherClient(publisher_options=options)
    path = publisher.topic_path(project, topic)
    futures = []
    for i in range(count):
        key = f"key-{i % 2}" if i % 3 == 0 else ""
        futures.append(
            publisher.publish(path, expected_data(i), ordering_key=key, seq=str(i), origin="python", text=TEXT)
        )
    print(json.dumps([f.result(timeout=60) for f in futures]))


if __name__ == "__main__":
    main()
