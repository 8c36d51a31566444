#!/usr/bin/env bash
# Instructions per request of an llm_server variant under callgrind (BENCHMARKS.md, "Instructions
# per request"): the real collector on 127.0.0.1:34317, the server under valgrind, 16 warm-up
# requests, counters zeroed, 400 requests from 8 connections, 3 s for the last export, a dump.
#
#   cargo build --release --features tower --example llm_server --example llm_server_bare --example llm_server_usual
#   GENSCOPE_PEERS=$(tests/peers/build.sh | tail -n 1) benches/callgrind_server.sh llm_server plain
#   benches/callgrind_server.sh llm_server_bare stream
#
# Prints the instructions per request; with CALLGRIND_OUT=FILE it keeps the profile there. Needs valgrind (Debian's `valgrind`) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
ex=$1; kind=${2:-plain}
peers=${GENSCOPE_PEERS:?GENSCOPE_PEERS must name the folder tests/peers/build.sh prints}
[ -x "$peers/otelcol" ] || { echo "no collector at $peers/otelcol: run tests/peers/build.sh" >&2; exit 2; }
[ -x "target/release/examples/$ex" ] || { echo "no target/release/examples/$ex: build it first (see above)" >&2; exit 2; }
for tool in valgrind callgrind_control callgrind_annotate python3; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 2; }
done
srv=; col=
# Waits up to 60 s for a port while the process behind it lives.
wait_port() {
  for _ in $(seq 1 600); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "$3 exited before listening; its log: $4" >&2; cat "$4" >&2; exit 1; }
    sleep 0.1
  done
  echo "$3 did not listen on $1 within 60 s" >&2; exit 1
}
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
wait_port 34317 "$col" otelcol "$work/col.log"
RUST_LOG=warn OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:34317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
  valgrind --tool=callgrind --callgrind-out-file="$work/out" \
  "target/release/examples/$ex" --addr 127.0.0.1:38123 --max-batch 32 >"$work/srv.log" 2>&1 &
srv=$!
wait_port 38123 "$srv" "$ex" "$work/srv.log"
python3 benches/callgrind_load.py 127.0.0.1:38123 16 8 "$kind"
sleep 2
callgrind_control -z "$srv" >/dev/null
python3 benches/callgrind_load.py 127.0.0.1:38123 400 8 "$kind"
sleep 3
callgrind_control -d "$srv" >/dev/null
sleep 1
total=$(callgrind_annotate "$work/out.1" 2>/dev/null | grep 'PROGRAM TOTALS' | tr -d , | awk '{print $1}')
echo "$ex $kind: $((total / 400)) instructions per request ($total over 400)"
# CALLGRIND_OUT=FILE keeps the profile for callgrind_annotate.
if [ -n "${CALLGRIND_OUT:-}" ]; then cp "$work/out.1" "$CALLGRIND_OUT"; fi
