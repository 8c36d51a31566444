#!/usr/bin/env bash
# Instructions per request of an llm_server variant under callgrind (BENCHMARKS.md, "Instructions
# per request"): the real collector on 127.0.0.1:34317, the server under valgrind, 16 warm-up
# requests, counters zeroed, 400 requests from 8 connections, 3 s for the last export, a dump.
#
#   cargo build --release --features tower --example llm_server --example llm_server_bare --example llm_server_usual
#   GENSCOPE_PEERS=$(tests/peers/build.sh | tail -n 1) benches/callgrind_server.sh llm_server plain
#   benches/callgrind_server.sh llm_server_bare stream
#
# Prints the instructions per request. Needs valgrind (Debian's `valgrind`) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
ex=$1; kind=${2:-plain}
peers=${GENSCOPE_PEERS:?GENSCOPE_PEERS must name the folder tests/peers/build.sh prints}
work=$(mktemp -d)
trap 'kill $srv $col 2>/dev/null || true; rm -rf "$work"' EXIT
cat >"$work/col.yaml" <<'YAML'
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:34317
exporters:
  debug:
    verbosity: basic
service:
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
    metrics:
      receivers: [otlp]
      exporters: [debug]
    logs:
      receivers: [otlp]
      exporters: [debug]
YAML
"$peers/otelcol" --config "$work/col.yaml" >"$work/col.log" 2>&1 &
col=$!
until (echo >/dev/tcp/127.0.0.1/34317) 2>/dev/null; do sleep 0.2; done
RUST_LOG=warn OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:34317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
  valgrind --tool=callgrind --callgrind-out-file="$work/out" \
  "target/release/examples/$ex" --addr 127.0.0.1:38123 --max-batch 32 >"$work/srv.log" 2>&1 &
srv=$!
until (echo >/dev/tcp/127.0.0.1/38123) 2>/dev/null; do sleep 0.5; done
python3 benches/callgrind_load.py 127.0.0.1:38123 16 8 "$kind"
sleep 2
callgrind_control -z "$srv" >/dev/null
python3 benches/callgrind_load.py 127.0.0.1:38123 400 8 "$kind"
sleep 3
callgrind_control -d "$srv" >/dev/null
sleep 1
total=$(callgrind_annotate "$work/out.1" 2>/dev/null | grep 'PROGRAM TOTALS' | tr -d , | awk '{print $1}')
echo "$ex $kind: $((total / 400)) instructions per request ($total over 400)"
