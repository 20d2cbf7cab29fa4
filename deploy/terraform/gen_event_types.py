#!/usr/bin/env python3
"""Writes event_types.auto.tfvars.json from the event-type registry (config/registry.toml).

Terraform creates one topic per type and a subscription per (type, suffix), exactly as
`event-service registry apply` does, so the registry stays the one place a type is declared.
scripts/check-deploy fails when the committed file is not what this script writes.

Usage: deploy/terraform/gen_event_types.py [REGISTRY] [OUT]
"""
import json
import pathlib
import sys
import tomllib

HERE = pathlib.Path(__file__).resolve().parent
registry = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[1] / "config" / "registry.toml"
out = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "event_types.auto.tfvars.json"

types = tomllib.loads(registry.read_text())["types"]
event_types = {
    name: {
        # The same defaults as event-model's registry.
        "topic": spec.get("topic", f"events-{name}"),
        "subscriptions": spec.get("subscriptions", ["exporter"]),
    }
    for name, spec in sorted(types.items())
}
out.write_text(json.dumps({"event_types": event_types}, indent=2, sort_keys=True) + "\n")
