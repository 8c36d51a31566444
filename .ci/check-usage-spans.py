#!/usr/bin/env python3
"""Checks an OTLP JSON-lines file written by the example: the spans of `generate`, a model
download, a health check and a fallback each carry the genscope.usage.* attributes."""
import json
import sys

want = {"generate": None, "download": None, "health_check": None, "fallback_strategy": None}
required = ["genscope.usage.cpu.time", "genscope.usage.process.cpu.utilization",
            "genscope.usage.memory.rss.delta", "genscope.usage.memory.rss.peak"]
with open(sys.argv[1]) as f:
    for n, line in enumerate(f, 1):
        batch = json.loads(line)
        for rs in batch.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    kind = span["name"].split(" ")[0]
                    if kind in want and want[kind] is None:
                        keys = {a["key"] for a in span.get("attributes", [])}
                        if all(k in keys for k in required):
                            want[kind] = span["name"]
missing = [k for k, v in want.items() if v is None]
for k, v in want.items():
    print(f"{k:<18} {v or 'MISSING'}")
if missing:
    sys.exit(f"spans without genscope.usage.* attributes: {missing}")
