#!/usr/bin/env bash
# Mutation testing of the code that decides trust (issue 15 item 6).
#
#   scripts/mutate.sh              every group below
#   scripts/mutate.sh enroll-auth  one or more groups by name
#
# Each group is one package, the files in it that make a trust decision,
# and the tests that exercise them. gremlins (github.com/go-gremlins/
# gremlins) mutates only those files (every other non-test file of the
# package is excluded with -E) and runs only those tests per mutant
# (GOFLAGS=-run=...), because a mutant costs a build and a test run and
# the full package suites take minutes. It prints, per group, gremlins'
# own summary and the score: killed / (killed + lived). Mutants no test
# covers are "not covered" and not part of the score; timed out mutants
# count as killed (the test noticed something).
#
# Environment: MUTATE_WORKERS (default 1), MUTATE_TIMEOUT_COEFFICIENT
# (default 4), MUTATE_OUT (directory for gremlins' JSON, default a temp
# dir). Tests that need PostgreSQL or external tools behave as in
# `go test`: they skip without them, so run this where scripts/test.sh
# runs for the full score.
set -euo pipefail

GREMLINS=github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0

# name ; package dir ; files to mutate ; -run regexp for the tests
GROUPS_TABLE='
ca-check      ; ca     ; check.go policy.go names.go                  ; ^Test(Issue(Refusals|Names|Matrix)|SubjectNotCopied|Profile|NameMatching|Glob|KeyUsageForKeyTypes|Lint)
acme-jws      ; acme   ; jws.go                                       ; ^Test(JWS|Deactivated|ErrorsAreProblems|DeniedJWS|EAB$|AccountLifecycle|HostileRequests|NonceFromAnyReplica|ShortRSA)
acme-finalize ; acme   ; finalize.go                                  ; ^Test(Finalize|OrdersEveryChallenge|IdentifiersChecked)
acme-revoke   ; acme   ; revoke.go                                    ; ^TestRevo
acme-validate ; acme   ; validate.go                                  ; ^Test(CAA|Validation|HTTP01|WildcardOnlyDNS01|FailedChallenge|ServeDefaultsRefuseNonPublic)
enroll-auth   ; enroll ; auth.go simplereenroll.go                    ; ^TestEST$
web-auth      ; web    ; auth.go                                      ; ^Test(APIAuthAndRoles|RoleMatrix|Credential|UILogin|ViewerRevokeDenied|UICrossOrigin|Denials)
'

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
# go install, not go run: the tool's own module has replace directives.
GOBIN="$bin" go install "$GREMLINS"
out=${MUTATE_OUT:-$(mktemp -d)}
mkdir -p "$out"

want=" $* "
printf '%-14s %7s %7s %9s %11s %7s\n' group killed lived timed-out not-covered score
summary=()
while IFS=';' read -r name dir files run; do
	name=$(echo "$name" | xargs)
	[ -n "$name" ] || continue
	if [ $# -gt 0 ] && [[ $want != *" $name "* ]]; then
		continue
	fi
	dir=$(echo "$dir" | xargs)
	run=$(echo "$run" | xargs)
	# Every non-test Go file of the package that is not in the group.
	others=()
	for f in "$dir"/*.go; do
		b=$(basename "$f")
		case $b in *_test.go) continue ;; esac
		keep=
		for g in $files; do [ "$b" = "$g" ] && keep=1; done
		[ -n "$keep" ] || others+=("${b%.go}")
	done
	# Files in subpackages (a path with a slash) are not the group's.
	exclude="^($(IFS='|'; echo "${others[*]}"))\\.go\$|/"
	log="$out/$name.log"
	echo "== $name: $files in ./$dir, tests $run" >&2
	# -count=1: the coverage run must really run, since gremlins derives
	# each mutant's timeout from how long it took.
	GOFLAGS="-count=1 -run=$run" "$bin/gremlins" unleash \
		--workers "${MUTATE_WORKERS:-1}" --test-cpu 2 \
		--timeout-coefficient "${MUTATE_TIMEOUT_COEFFICIENT:-4}" \
		-E "$exclude" -o "$out/$name.json" "./$dir" >"$log" 2>&1 || true
	grep -E '^ *(LIVED|NOT COVERED|TIMED OUT)' "$log" >&2 || true
	k=$(grep -c '^ *KILLED' "$log" || true)
	l=$(grep -c '^ *LIVED' "$log" || true)
	to=$(grep -c '^ *TIMED OUT' "$log" || true)
	nc=$(grep -c '^ *NOT COVERED' "$log" || true)
	score=n/a
	if [ $((k + to + l)) -gt 0 ]; then
		score=$(awk -v k=$((k + to)) -v l="$l" 'BEGIN { printf "%.1f%%", 100 * k / (k + l) }')
	fi
	summary+=("$(printf '%-14s %7d %7d %9d %11d %7s' "$name" "$k" "$l" "$to" "$nc" "$score")")
	echo "${summary[-1]}"
done <<<"$GROUPS_TABLE"
echo "gremlins logs and JSON: $out" >&2
