#!/usr/bin/env bash
# Runs every MICA test, after installing what the tests need when it is
# missing (SoftHSM2, OpenSC, openssl, gcc for cgo and the race detector).
# Extra arguments go to `go test` (e.g. -short, -run TestX).
#
# Set MICA_TEST_POSTGRES_DSN to also run the store suites against PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- dependencies -----------------------------------------------------------
need=()
command -v softhsm2-util >/dev/null || need+=(softhsm2)
[ -e /usr/lib/softhsm/libsofthsm2.so ] || need+=(softhsm2)
command -v pkcs11-tool >/dev/null || need+=(opensc)
command -v openssl >/dev/null || need+=(openssl)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v psql >/dev/null || need+=(postgresql-client)
command -v certbot >/dev/null || need+=(certbot)  # ACME acceptance tests
command -v lego >/dev/null || need+=(lego)
command -v curl >/dev/null || need+=(curl ca-certificates)  # EST acceptance tests
[ -x /usr/bin/chromium ] || need+=(chromium)  # web UI browser test (chromedp)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing ${need[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "test.sh: need root or sudo to install ${need[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Go-installed clients, pinned: Caddy (ACME client test of the dev recipes).
# GOBIN goes first on PATH so the tests find what was installed here.
gobin="$(go env GOBIN)"; gobin="${gobin:-$(go env GOPATH)/bin}"
export PATH="$gobin:$PATH"
if ! go version -m "$(command -v caddy || echo /nonexistent)" 2>/dev/null | grep -q 'caddyserver/caddy/v2[[:space:]]*v2\.11\.9'; then
  echo "test.sh: installing caddy v2.11.9" >&2
  CGO_ENABLED=0 go install github.com/caddyserver/caddy/v2/cmd/caddy@v2.11.9
fi

# Tests needing an external tool must run, not skip, whenever this script
# runs them: a missing tool fails its test (internal/testtool). PostgreSQL
# is required when a server is configured (.ci/run always configures one);
# without it the store suites run on SQLite only and say so.
if [ -n "${MICA_TEST_POSTGRES_DSN:-}" ]; then
  export MICA_REQUIRE_TOOLS=1
else
  echo "test.sh: MICA_TEST_POSTGRES_DSN is not set: the PostgreSQL cases will be SKIPPED (CI runs them)" >&2
  export MICA_REQUIRE_TOOLS=openssl,curl,certbot,lego,caddy,chromium,softhsm2,pkcs11-tool,go,estclient
fi
export MICA_REQUIRE_SOFTHSM=1
export MICA_REQUIRE_ACME_CLIENTS=1
export MICA_REQUIRE_CHROMIUM=1
export CGO_ENABLED=1

# --- static checks ----------------------------------------------------------
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:" >&2; echo "$unformatted" >&2; exit 1
fi
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# --- tests ------------------------------------------------------------------
go test -race -count=1 -timeout 25m "$@" ./...

# --- chaos ------------------------------------------------------------------
# The kill -9 harness (scripts/chaos.sh, about 80 s; zero debris or it
# fails), on a full run only, like fuzzing.
if [ $# -eq 0 ] || [ "${MICA_CHAOS:-}" = 1 ]; then
  ./scripts/chaos.sh
fi

# --- fuzzing ----------------------------------------------------------------
# Every fuzz target runs for a bounded time (scripts/fuzz.sh finds them), on
# a full run only: a run narrowed with extra `go test` arguments skips it.
if [ $# -eq 0 ] || [ "${MICA_FUZZ:-}" = 1 ]; then
  FUZZTIME="${MICA_FUZZTIME:-15s}" ./scripts/fuzz.sh
fi
