"""Consumes COUNT messages with Google's official Python client (streaming pull), acking each.

Usage: official_python_consume.py PROJECT SUBSCRIPTION COUNT   (PUBSUB_EMULATOR_HOST set)
Prints one JSON object: seconds (wall time from subscribe to the last ack) and cpu_seconds
(user + system CPU of this process over the same span).
"""
import json
import resource
import sys
import threading
import time

from google.cloud import pubsub_v1


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    project, sub, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, sub)
    seen = 0
    lock = threading.Lock()
    done = threading.Event()

    def callback(message) -> None:
        nonlocal seen
        message.ack()
        with lock:
            seen += 1
            if seen >= count:
                done.set()

    flow = pubsub_v1.types.FlowControl(max_messages=10_000)
    cpu0, t0 = cpu(), time.monotonic()
    future = subscriber.subscribe(path, callback=callback, flow_control=flow)
    if not done.wait(timeout=600):
        sys.exit(f"only {seen} of {count} messages within 600 s")
    t1, cpu1 = time.monotonic(), cpu()
    future.cancel()
    print(json.dumps({"seconds": t1 - t0, "cpu_seconds": cpu1 - cpu0, "messages": seen}))


if __name__ == "__main__":
    main()
