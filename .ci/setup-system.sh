#!/usr/bin/env bash
# Installs the system packages the test suite needs, when missing (idempotent; CI runs as root).
# Node.js comes with the machine; gcc builds the native parts, chromium runs the browser test,
# postgresql is the benchmark's peer, redis-server backs the Redis directory's tests.
set -euo pipefail
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
# Debian's Chromium for the status page's browser test (services/router/test/status-page.e2e.test.ts);
# playwright-core drives it and never downloads a browser of its own.
[ -x /usr/bin/chromium ] || need+=(chromium)
# Debian's PostgreSQL for the benchmark harness's peer baseline (loadtest/harness.test.ts starts a
# throwaway cluster from /usr/lib/postgresql/*/bin; the packaged service is never used).
[ -d /usr/lib/postgresql ] || need+=(postgresql)
# Debian's Redis for the Redis directory and membership tests (packages/testkit/src/redis-server.ts
# starts throwaway servers on free loopback ports; the packaged service is never used).
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# openssl makes the self-signed certificate of the TLS (rediss://) test server.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing system packages: ${need[*]} (install them, or run as root)" >&2
    exit 1
  fi
fi
