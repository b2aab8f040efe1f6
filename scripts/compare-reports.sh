#!/usr/bin/env bash
# scripts/compare-reports.sh OLD_CSV [NEW_CSV] [CORPUS_DIR]
#
# Checks that two csv binaries write the same reports: a reshape must change
# no verdict, reason, digest, field or order. Both binaries run, from the
# repository's root and with the same arguments, on
#   - the example build (examples/build and examples/untrusted, with
#     examples/policy.yaml);
#   - the bench corpus (CORPUS_DIR/build, default
#     ${TMPDIR:-/tmp}/csv-bench-corpus: bench/run.sh builds it), with three
#     policies OLD_CSV writes with csv policy new: a hash policy (--level
#     hash), a signer policy (--level pca --fallback hash) and a strict signer
#     policy made from the build-signed PE files only (--level pca), which
#     blocks the rest for every reason csv gives;
# and run
#   - csv validate with every --format (text, json, sarif, junit), with and
#     without --verbose, json also with --all-digests and with --shard 1/2,
#     sarif also with --sarif-passes, json and text also with --output (the
#     file is compared too);
#   - csv inspect --format json and --format text on every file;
#   - csv policy new at every level (the policies themselves are compared).
# Standard output, standard error and the exit status are compared; the
# run's time fields (JSON started and duration_seconds, SARIF startTimeUtc
# and endTimeUtc, JUnit time and timestamp) are blanked first, and nothing
# else is. Exit status 0: identical; 1: a difference (shown as a diff).
#
# NEW_CSV defaults to a csv built from this working tree. Build OLD_CSV from
# the commit to compare with, for instance:
#   git worktree add /tmp/csv-main main && (cd /tmp/csv-main && go build -o /tmp/csv-old ./cmd/csv)
set -euo pipefail

case ${1:-} in
  "" | -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    [[ -n ${1:-} ]]
    exit $?
    ;;
esac
command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/csv-compare.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

old=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
if [[ -n ${2:-} ]]; then
  new=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
else
  (cd "$root" && go build -o "$tmp/csv-new" ./cmd/csv)
  new=$tmp/csv-new
fi
corpus=${3:-${TMPDIR:-/tmp}/csv-bench-corpus}
[[ -x $old && -x $new ]] || { echo "compare-reports.sh: $old or $new is not an executable" >&2; exit 2; }

# blank: the run's time fields, in every format.
blank() {
  sed -E \
    -e 's/^( *"started": )"[^"]*"/\1"T"/' \
    -e 's/^( *"duration_seconds": )[0-9.e+-]+/\1D/' \
    -e 's/^( *"(startTimeUtc|endTimeUtc)": )"[^"]*"/\1"T"/' \
    -e 's/ time="[0-9.]+"/ time="D"/g' \
    -e 's/ timestamp="[^"]*"/ timestamp="T"/g'
}

cases=0 diffs=0
# run NAME ARGS...: runs both binaries with ARGS from the repository root and
# compares what they print.
run() {
  local name=$1 bin status
  shift
  cases=$((cases + 1))
  for bin in old new; do
    local exe=$old
    [[ $bin == new ]] && exe=$new
    status=0
    (cd "$root" && "$exe" "$@") >"$tmp/$bin.out" 2>"$tmp/$bin.err" || status=$?
    {
      blank <"$tmp/$bin.out"
      echo "--- stderr"
      cat "$tmp/$bin.err"
      echo "--- exit status $status"
      if [[ -f $tmp/report.out ]]; then
        echo "--- report file"
        blank <"$tmp/report.out"
        rm -f "$tmp/report.out"
      fi
    } >"$tmp/$bin.all"
  done
  if ! cmp -s "$tmp/old.all" "$tmp/new.all"; then
    diffs=$((diffs + 1))
    echo "DIFFERENT: csv $*" >&2
    diff -u "$tmp/old.all" "$tmp/new.all" | head -n 60 >&2 || true
  fi
}

# validate_all NAME POLICY ROOTS...: every report format and option.
validate_all() {
  local name=$1 policy=$2
  shift 2
  local f
  for f in text json sarif junit; do
    run "$name/$f" validate --policy "$policy" --format "$f" "$@"
    run "$name/$f-verbose" validate --policy "$policy" --format "$f" --verbose "$@"
  done
  run "$name/json-all-digests" validate --policy "$policy" --format json --all-digests "$@"
  run "$name/json-shard" validate --policy "$policy" --format json --shard 1/2 "$@"
  run "$name/sarif-passes" validate --policy "$policy" --format sarif --sarif-passes "$@"
  run "$name/json-output" validate --policy "$policy" --format json --output "$tmp/report.out" "$@"
  run "$name/text-output" validate --policy "$policy" --format text --verbose --output "$tmp/report.out" "$@"
}

# --- the example build ---------------------------------------------------------------------
validate_all examples examples/policy.yaml examples/build examples/untrusted
mapfile -t example_files < <(cd "$root" && find examples/build examples/untrusted -type f | sort)
run examples/inspect-json inspect --format json "${example_files[@]}"
run examples/inspect-text inspect --format text "${example_files[@]}"
for level in hash leaf pca root publisher; do
  run "examples/policy-new-$level" policy new --level "$level" --fallback hash --name ex examples/build examples/untrusted
done

# --- the bench corpus ------------------------------------------------------------------------
if [[ -d $corpus/build ]]; then
  tree=$corpus/build
  "$old" policy new --level hash --name bench-hash --output "$tmp/hash.yaml" "$tree" 2>/dev/null
  "$old" policy new --level pca --fallback hash --name bench-signer --output "$tmp/signer.yaml" "$tree" 2>/dev/null
  mapfile -t signed < <(find "$tree/win" -name '*-signed.exe' | sort)
  "$old" policy new --level pca --name bench-strict --output "$tmp/strict.yaml" "${signed[@]}" 2>/dev/null
  for p in hash signer strict; do
    validate_all "bench-$p" "$tmp/$p.yaml" "$tree"
  done
  mapfile -t files < <(find "$tree" -type f | sort)
  run bench/inspect-json inspect --format json "${files[@]}"
  run bench/inspect-text inspect --format text "${files[@]}"
  for level in hash leaf pca root publisher; do
    run "bench/policy-new-$level" policy new --level "$level" --fallback hash --name b "$tree"
  done
else
  echo "compare-reports.sh: no bench corpus in $corpus: compared the example build only (bench/run.sh builds it)" >&2
fi

if ((diffs > 0)); then
  echo "compare-reports.sh: $diffs of $cases runs differ" >&2
  exit 1
fi
echo "compare-reports.sh: $cases runs, identical apart from the run's time fields"
