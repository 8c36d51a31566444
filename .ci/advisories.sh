#!/usr/bin/env bash
# `cargo deny --offline check advisories` against the RustSec snapshot beside the repository
# (../shared/advisory-db, or GENSCOPE_ADVISORY_DB): CI machines cannot reach GitHub. cargo-deny
# opens its database as a git repository named after the source URL's hash inside `db-path`, so
# the snapshot is copied there and committed with its own commit date (see its SNAPSHOT.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${GENSCOPE_ADVISORY_DB:-../shared/advisory-db}
if [ ! -f "$src/SNAPSHOT.txt" ]; then
  echo "no RustSec snapshot at $src (set GENSCOPE_ADVISORY_DB to one)" >&2
  exit 1
fi
date=$(grep -oE '\([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:+-]+\)' "$src/SNAPSHOT.txt" | head -n 1 | tr -d '()')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db="$work/advisory-dbs"
dest="$db/advisory-db-3157b0e258782691"
mkdir -p "$db"
cp -r "$src" "$dest"
chmod -R u+w "$dest"
(
  cd "$dest"
  git init -q
  git add -A
  GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date" \
    git -c user.name=snapshot -c user.email=snapshot@localhost commit -q -m "RustSec snapshot"
)
# The project's deny.toml with the database path pointed at the copy.
awk -v db="$db" '{print} /^\[advisories\]/{print "db-path = \"" db "\""}' deny.toml >"$work/deny.toml"
echo "RustSec snapshot: $(head -n 2 "$src/SNAPSHOT.txt" | tr '\n' ' ')" >&2
# --offline also keeps `cargo metadata` off the network: fetch every crate of every target first.
cargo fetch --locked >/dev/null 2>&1 || cargo fetch --locked
cargo deny --log-level info --offline --config "$work/deny.toml" check advisories
