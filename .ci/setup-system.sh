#!/usr/bin/env bash
# Installs the system packages the test suite needs, when missing (idempotent; CI runs as root).
# Nothing is needed yet beyond Node.js and a C compiler; later suites add redis-server and chromium here.
set -euo pipefail
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing system packages: ${need[*]} (install them, or run as root)" >&2
    exit 1
  fi
fi
