#!/usr/bin/env bash
# The kill -9 chaos harness of issue 14 (cmd/mica/chaos_test.go, build tag
# chaos): ACME and EST clients against `mica dev` on SQLite, then against
# two `mica serve` replicas on the PostgreSQL of MICA_TEST_POSTGRES_DSN (a
# scratch schema), SIGKILLing a random replica every 2-5 s. It prints the
# counts (certificates received, kills, debris) and fails on any debris:
# a received certificate missing or different in the store, a duplicate
# serial, an order left processing, a reservation left requested, a burnt
# one-time token, a revocation missing from the latest CRL, a broken audit
# chain. Bounded: MICA_CHAOS_SECONDS of load per database (default 30), so
# about 80 s in all with the start-ups and the final checks.
set -euo pipefail
cd "$(dirname "$0")/.."
export MICA_CHAOS_SECONDS="${MICA_CHAOS_SECONDS:-30}"
go vet -tags chaos ./cmd/mica
exec go test -tags chaos -count=1 -timeout 10m -run '^TestChaos$' -v "$@" ./cmd/mica/
