#!/usr/bin/env bash
# Builds the real programs the peer tests run against, from their published Go modules: one
# pinned module per peer in tests/peers/<peer>/ (go.mod + go.sum; peer.conf lists
# `BINARY PACKAGE [BUILD_TAGS]`). Binaries go outside the repository (GENSCOPE_PEERS_DIR, default
# ~/.cache/genscope-peers); a stamp keyed on the go.sum files makes a second run return at once.
# Progress goes to stderr; the last line on stdout is the absolute folder holding the binaries.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${GENSCOPE_PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/genscope-peers}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
command -v go >/dev/null 2>&1 || { echo "go is not installed: the peer tests need Go 1.26 or newer" >&2; exit 1; }

for dir in "$here"/*/; do
  peer="$(basename "$dir")"
  [ -f "$dir/peer.conf" ] || continue
  key="$(find "$dir" -maxdepth 1 -type f \( -name go.mod -o -name go.sum -o -name peer.conf -o -name '*.go' \) -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)"
  stamp="$out/.$peer.$key"
  if [ -f "$stamp" ]; then
    echo "peer $peer: up to date" >&2
    continue
  fi
  while read -r binary package tags; do
    [ -z "${binary:-}" ] && continue
    echo "peer $peer: building $binary from $package (go $(go env GOVERSION))" >&2
    start=$(date +%s)
    (cd "$dir" && go build -trimpath -ldflags='-s -w' ${tags:+-tags "$tags"} -o "$out/$binary" "$package") >&2
    echo "peer $peer: $binary built in $(( $(date +%s) - start )) s" >&2
  done <"$dir/peer.conf"
  rm -f "$out/.$peer."*
  touch "$stamp"
done
echo "$out"
