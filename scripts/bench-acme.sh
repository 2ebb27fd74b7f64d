#!/usr/bin/env bash
# ACME load benchmark: MICA on SQLite, MICA on PostgreSQL and step-ca, one
# after another on loopback, each driven by the project's own load client
# (internal/acmeload) with full orders at 1, 4, 16 and 64 clients. Prints
# the table and regenerates docs/performance.md's generated section and
# docs/img/bench-acme.svg. The numbers are figures, never a pass/fail.
#
#   scripts/bench-acme.sh                 # or: task bench:acme
#
# Settings (environment):
#   BENCH_DURATION=20s        measured time per point
#   BENCH_WARMUP=2s           unmeasured time before each point
#   BENCH_CLIENTS=1,4,16,64   client counts
#   BENCH_SERVERS=mica-sqlite,mica-postgres,step-ca
#   MICA_BENCH_POSTGRES_DSN   an existing database on the PostgreSQL server to
#                             use; the benchmark works in its own scratch
#                             database next to it, dropped afterwards
#                             (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable)
#   BENCH_TOOLS=DIR           where step-ca and step are looked for and
#                             installed (default $(go env GOPATH)/bin)
#   BENCH_PROFILE=1           afterwards, profile MICA on SQLite at 16 clients
#                             with perf and print the hottest functions
#   BENCH_WRITE_DOCS=0        print only; leave docs/ alone
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-20s}
WARMUP=${BENCH_WARMUP:-2s}
CLIENTS=${BENCH_CLIENTS:-1,4,16,64}
SERVERS=${BENCH_SERVERS:-mica-sqlite,mica-postgres,step-ca}
PG_DSN=${MICA_BENCH_POSTGRES_DSN:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
TOOLS=${BENCH_TOOLS:-$(go env GOPATH)/bin}
STEPCA_VERSION=v0.30.2
STEP_VERSION=v0.29.0

work=$(mktemp -d "${TMPDIR:-/tmp}/mica-bench.XXXXXX")
pids=()
pg_db=""
cleanup() {
	for p in "${pids[@]}"; do stop "$p"; done
	if [[ -n $pg_db ]]; then "$work/acmeload" pg-drop -dsn "$PG_DSN" -db "$pg_db" || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

# stop ends a server: SIGTERM, then SIGKILL if it is still there after 10 s.
stop() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# wait_up waits until URL answers (any certificate), or gives up after 60 s.
wait_up() {
	for _ in $(seq 600); do
		if curl -skf -o /dev/null "$1"; then return 0; fi
		sleep 0.1
	done
	echo "bench-acme: $1 did not come up; log:" >&2
	tail -n 30 "$2" >&2
	return 1
}

echo "bench-acme: building mica and the load client" >&2
CGO_ENABLED=1 go build -o "$work/mica" ./cmd/mica
go build -o "$work/acmeload" ./internal/acmeload/cmd/acmeload
results=$work/results.jsonl
: >"$results"
load=$work/acmeload

# run_load NAME DIRECTORY-URL PID H01PORT DNSPORT [PG-DB]
run_load() {
	"$load" run -server "$1" -directory "$2" -pid "$3" -http01 "127.0.0.1:$4" -dns "127.0.0.1:$5" \
		${6:+-pg-db "$6"} -clients "$CLIENTS" -duration "$DURATION" -warmup "$WARMUP" -out "$results"
}

# start_mica NAME [DSN]: a fresh CA in its own data directory; sets
# mica_pid, mica_url, h01, dns.
start_mica() {
	local name=$1 dsn=${2:-} data=$work/$1
	local port hport
	port=$("$load" freeport); hport=$("$load" freeport); h01=$("$load" freeport); dns=$("$load" freeport)
	head -c 32 /dev/urandom | base64 >"$work/secret"
	chmod 600 "$work/secret"
	"$work/mica" init --data "$data" --secret-file "$work/secret" ${dsn:+--database "$dsn"} \
		--listen "127.0.0.1:$port" --http-listen "127.0.0.1:$hport" >"$work/$name-init.log" 2>&1
	# Benchmark settings: no rate limits (every client is 127.0.0.1, and
	# the defaults would stop the load within a minute), and validation
	# may reach the loopback responder.
	cat >>"$data/mica.yaml" <<-YAML
	acme:
	    limits:
	        orders_per_account_per_hour: -1
	        orders_per_ip_per_hour: -1
	        accounts_per_ip_per_hour: -1
	        failed_validations_per_account_per_name_per_hour: -1
	    validation:
	        allow_networks: [127.0.0.0/8]
	YAML
	"$work/mica" serve --data "$data" --http01-port "$h01" --dns-resolver "127.0.0.1:$dns" >"$work/$name.log" 2>&1 &
	mica_pid=$!
	pids+=("$mica_pid")
	mica_url=https://127.0.0.1:$port
	wait_up "$mica_url/healthz" "$work/$name.log"
}

bench_mica() {
	local name=$1 dsn=${2:-} db=${3:-}
	start_mica "$name" "$dsn"
	run_load "$name" "$mica_url/acme/default/directory" "$mica_pid" "$h01" "$dns" "$db"
	stop "$mica_pid"
}

# step_tools installs step-ca and step if missing; it runs as an if
# condition, where set -e is off, hence the explicit returns.
step_tools() {
	export PATH=$TOOLS:$PATH
	if ! command -v step-ca >/dev/null; then
		echo "bench-acme: installing step-ca $STEPCA_VERSION into $TOOLS" >&2
		CGO_ENABLED=0 GOBIN=$TOOLS go install "github.com/smallstep/certificates/cmd/step-ca@$STEPCA_VERSION" || return 1
	fi
	if ! command -v step >/dev/null; then
		echo "bench-acme: installing step $STEP_VERSION into $TOOLS" >&2
		GOBIN=$TOOLS go install "github.com/smallstep/cli/cmd/step@$STEP_VERSION" || return 1
	fi
}

bench_stepca() {
	if ! step_tools; then
		echo "bench-acme: step-ca could not be installed; its column is left out" >&2
		return 0
	fi
	local port h01 dns pid
	port=$("$load" freeport); h01=$("$load" freeport); dns=$("$load" freeport)
	export STEPPATH=$work/step
	printf 'bench-password\n' >"$work/pw"
	step ca init --name bench --dns 127.0.0.1 --address "127.0.0.1:$port" --provisioner admin \
		--password-file "$work/pw" --acme --deployment-type standalone >"$work/step-init.log" 2>&1
	step-ca "$STEPPATH/config/ca.json" --password-file "$work/pw" --insecure \
		--acme-http-port "$h01" --resolver "127.0.0.1:$dns" >"$work/step-ca.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	wait_up "https://127.0.0.1:$port/health" "$work/step-ca.log"
	run_load step-ca "https://127.0.0.1:$port/acme/acme/directory" "$pid" "$h01" "$dns"
	stop "$pid"
}

IFS=, read -ra servers <<<"$SERVERS"
for s in "${servers[@]}"; do
	case $s in
	mica-sqlite) bench_mica mica-sqlite ;;
	mica-postgres)
		read -r dsn pg_db < <("$load" pg-create -dsn "$PG_DSN")
		bench_mica mica-postgres "$dsn" "$pg_db"
		"$load" pg-drop -dsn "$PG_DSN" -db "$pg_db"
		pg_db=""
		;;
	step-ca) bench_stepca ;;
	*) echo "bench-acme: unknown server $s" >&2; exit 2 ;;
	esac
done

note="Settings: ${DURATION} measured per point after ${WARMUP} of warm-up; clients ${CLIENTS}; \`scripts/bench-acme.sh\` with step-ca ${STEPCA_VERSION}."
if [[ ${BENCH_WRITE_DOCS:-1} == 1 ]]; then
	mkdir -p docs/img
	"$load" report -in "$results" -baseline step-ca -md docs/performance.md -svg docs/img/bench-acme.svg -note "$note"
else
	"$load" report -in "$results" -baseline step-ca
fi

if [[ ${BENCH_PROFILE:-0} == 1 ]]; then
	if ! command -v perf >/dev/null; then
		echo "bench-acme: BENCH_PROFILE=1 needs perf" >&2
		exit 0
	fi
	echo "bench-acme: profiling mica-sqlite at 16 clients" >&2
	start_mica mica-profile
	perf record -F 499 -g -p "$mica_pid" -o "$work/perf.data" >/dev/null 2>&1 &
	perf_pid=$!
	"$load" run -server mica-profile -directory "$mica_url/acme/default/directory" -pid "$mica_pid" \
		-http01 "127.0.0.1:$h01" -dns "127.0.0.1:$dns" -clients 16 -duration "$DURATION" -warmup 0s -out "$work/profile.jsonl"
	kill -INT "$perf_pid"; wait "$perf_pid" || true
	stop "$mica_pid"
	# Share of samples under each function (callees included), for the
	# functions that tell where an order's time goes.
	perf report -i "$work/perf.data" --stdio --children --sort sym --percent-limit 1 -g none 2>/dev/null |
		grep -E 'net/http\.\(\*conn\)\.serve$|database/sql\.withLock|database/sql\.\(\*DB\)\.(exec|query)$|Xsqlite3_step|_sqlite3WalFrames|_sqlite3VdbeHalt|fsync|fdatasync|do_syscall_64|acme\.\(\*Server\)\.[a-z]+$|inventory\.\(\*Store\)\.[A-Za-z]+$|ca\.\(\*CA\)\.Issue$|zlint|crypto/ecdsa\.(Sign|Verify)|crypto/tls|runtime\.gcBgMarkWorker|runtime\.mallocgc$|log/slog' |
		head -60
fi
