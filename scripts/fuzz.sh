#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a bounded time each.
#
# Each target is found by its `func FuzzX(f *testing.F)` declaration, so a
# new target runs in CI without being listed here. A crash makes the script
# fail; `go test -fuzz` writes the failing input under the package's
# testdata/fuzz/FuzzX/, and that file is committed as a regression input
# (plain `go test` then replays it on every run).
#
#   FUZZTIME=15s ./scripts/fuzz.sh            every target, 15 s each
#   ./scripts/fuzz.sh FuzzParseRequest        only the named targets
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-15s}"

mapfile -t targets < <(git ls-files '*_test.go' 2>/dev/null | xargs grep -H -o '^func Fuzz[A-Za-z0-9_]*(f \*testing\.F)' |
  sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#./\1 \2#' | sort -u)

want=("$@")
ran=0 failed=()
for t in "${targets[@]}"; do
  pkg=${t% *} name=${t#* }
  if [ ${#want[@]} -gt 0 ] && ! printf '%s\n' "${want[@]}" | grep -qx "$name"; then continue; fi
  echo "fuzz: $name in $pkg for $fuzztime" >&2
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"; then
    failed+=("$pkg $name")
  fi
  ran=$((ran + 1))
done
echo "fuzz: $ran targets run, ${#failed[@]} failed" >&2
if [ ${#failed[@]} -gt 0 ]; then
  printf 'fuzz: FAILED %s\n' "${failed[@]}" >&2
  exit 1
fi
[ "$ran" -gt 0 ] || { echo "fuzz: no targets found" >&2; exit 1; }
