#!/usr/bin/env bash
# bench/run.sh [CORPUS_DIR] [SCALE]
#
# Throughput and peak memory of `csv validate` against two references, on the
# same warm files in one run:
#   csv        csv validate --policy P --format json --output R CORPUS/build
#              (P is what `csv policy new --level hash` writes for the tree)
#   reference  bench/refsha: walk + one SHA256 per file on all cores, no
#              parsing, no judging (the physical limit)
#   sha256sum  find CORPUS/build -type f -print0 | xargs -0 -P2 sha256sum
#              (what a user would script instead)
#
# CORPUS_DIR defaults to ${TMPDIR:-/tmp}/csv-bench-corpus, SCALE to medium.
# The corpus is built with ../shared/bench/make-corpus.sh only if
# CORPUS_DIR/build does not exist yet (it takes minutes); REBUILD=1 or
# --rebuild forces a rebuild.
#
# Environment:
#   RUNS=5      timed runs of each contestant (interleaved; medians reported)
#   REBUILD=1   rebuild the corpus even if it exists
#   STRICT=1    exit 1 when a target is missed (default: report only)
#
# Results are printed and written to CORPUS_DIR/bench-results.txt.
set -euo pipefail

rebuild=${REBUILD:-0}
pos=()
for a in "$@"; do
  case $a in
    --rebuild) rebuild=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    -*) echo "run.sh: unknown flag $a" >&2; exit 2 ;;
    *) pos+=("$a") ;;
  esac
done
dir=${pos[0]:-${TMPDIR:-/tmp}/csv-bench-corpus}
scale=${pos[1]:-medium}
runs=${RUNS:-5}
strict=${STRICT:-0}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: RUNS=$runs: want a positive integer" >&2; exit 2; }

command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
shared=$(cd "$root/../shared" && pwd)
ncpu=$(nproc)

# --- corpus ---------------------------------------------------------------------------------
if [[ $rebuild == 1 || ! -d $dir/build ]]; then
  echo "run.sh: building the $scale corpus in $dir (takes minutes)..." >&2
  mkdir -p "$dir"
  "$shared/bench/make-corpus.sh" "$dir" "$scale" >&2
else
  echo "run.sh: reusing the corpus in $dir/build (REBUILD=1 to rebuild)" >&2
fi
dir=$(cd "$dir" && pwd)
tree=$dir/build

# --- tools ----------------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/csv-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "run.sh: building csv, refsha and rss..." >&2
(cd "$root" && go build -o "$tmp/csv" ./cmd/csv && go build -o "$tmp/refsha" ./bench/refsha &&
  go build -o "$tmp/rss" ./bench/rss)
csv=$tmp/csv

# --- policy ---------------------------------------------------------------------------------
echo "run.sh: writing the hash policy for $tree..." >&2
if ! "$csv" policy new --level hash --name bench --output "$tmp/policy.yaml" "$tree" 2>"$tmp/policy.err"; then
  echo "run.sh: csv policy new failed (the corpus should hold no malformed binaries):" >&2
  cat "$tmp/policy.err" >&2
  exit 1
fi
sed 's/^/  /' "$tmp/policy.err" >&2

# --- corpus size and warm cache ---------------------------------------------------------------
read -r files bytes < <(find "$tree" -type f -printf '%s\n' | awk '{n++; s+=$1} END {printf "%d %d\n", n, s}')
echo "run.sh: $files files, $bytes bytes; warming the page cache..." >&2
find "$tree" -type f -print0 | xargs -0 cat >/dev/null

# --- timed runs -----------------------------------------------------------------------------
# time LABEL CMD...: runs CMD under bench/rss (stdout discarded), fails the
# benchmark if it exits non-zero, and appends
# "LABEL WALL_S MAXRSS_KIB CPU_S INBLOCK" to $tmp/times.
time_it() {
  local label=$1
  shift
  local status=0
  "$tmp/rss" -q -label "$label" -- "$@" 2>"$tmp/stderr" || status=$?
  local line
  line=$(grep '^rss: ' "$tmp/stderr" | tail -n1 || true)
  if [[ $status != 0 || -z $line ]]; then
    echo "run.sh: $label exited with status $status:" >&2
    cat "$tmp/stderr" >&2
    exit 1
  fi
  awk -v l="$label" '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    print l, v["wall_s"], v["maxrss_kib"], v["user_s"] + v["sys_s"], v["inblock"]
  }' <<<"$line" >>"$tmp/times"
}

# check_report: the JSON report exists, passed, and its summary says nothing
# was blocked and some binaries were judged. (No jq: the report is indented
# JSON, one key per line, and only the summary object has these keys.)
check_report() {
  awk '
    /^  "passed": / { passed = ($2 == "true,") }
    /^  "summary": \{/ { in_sum = 1; next }
    in_sum && /^  \}/ { in_sum = 0 }
    in_sum { gsub(/[",]/, ""); s[$1] = $2 }
    END {
      if (!passed || s["blocked:"] != "0" || s["files:"] + 0 == 0) {
        printf "passed=%s files=%s blocked=%s\n", passed, s["files:"], s["blocked:"]; exit 1
      }
      printf "%d %d %d\n", s["files:"], s["allowed:"], s["skipped:"]
    }' "$tmp/report.json"
}

# cpustat -> "TOTAL STEAL" jiffies of all CPUs from /proc/stat (0 0 if absent).
cpustat() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9; f = 1 } END { if (!f) print 0, 0 }' /proc/stat 2>/dev/null || echo 0 0; }

: >"$tmp/times"
echo "run.sh: $runs interleaved runs of each contestant..." >&2
read -r cpu0 steal0 < <(cpustat)
for ((i = 1; i <= runs; i++)); do
  rm -f "$tmp/report.json"
  time_it csv "$csv" validate --policy "$tmp/policy.yaml" --format json --output "$tmp/report.json" "$tree"
  if ! judged=$(check_report); then
    echo "run.sh: the csv report is not a clean pass: $judged" >&2
    exit 1
  fi
  time_it reference "$tmp/refsha" "$tree"
  time_it sha256sum bash -c 'find "$1" -type f -print0 | xargs -0 -P"$2" sha256sum >/dev/null' _ "$tree" "$ncpu"
  echo "  run $i/$runs: $(awk -v i="$i" 'NR > (i-1)*3 { printf "%s %.3fs  ", $1, $2 }' "$tmp/times")" >&2
done
read -r cpu1 steal1 < <(cpustat)
read -r judged_files judged_allowed judged_skipped <<<"$judged"

# --- results --------------------------------------------------------------------------------
# median LABEL [COL] -> median of column COL (default 2, wall seconds) over LABEL's runs;
# span LABEL -> "min-max" wall seconds; peak LABEL -> max RSS in KiB; inblocks LABEL -> sum.
median() {
  awk -v l="$1" -v c="${2:-2}" '$1 == l { print $c }' "$tmp/times" | sort -g |
    awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
span() { awk -v l="$1" '$1 == l { print $2 }' "$tmp/times" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f-%.3f", lo, hi }'; }
peak() { awk -v l="$1" '$1 == l && $3 > m { m = $3 } END { print m + 0 }' "$tmp/times"; }
inblocks() { awk -v l="$1" '$1 == l { s += $5 } END { print s + 0 }' "$tmp/times"; }

t_csv=$(median csv) t_ref=$(median reference) t_sum=$(median sha256sum)
c_csv=$(median csv 4) c_ref=$(median reference 4)
{
  echo "csv benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -n), $ncpu CPUs, $(go version | awk '{print $3}')"
  echo "corpus: $tree ($scale): $files files, $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.1f MB", b / 1e6 }'))"
  echo "csv judged $judged_files binaries ($judged_allowed allowed, 0 blocked), skipped $judged_skipped"
  echo "warm page cache; $runs interleaved runs each; times are medians; MB = 1e6 bytes;"
  echo "MB/s = corpus bytes / median wall time; CPU s = user + sys; peak RSS = max over runs"
  echo "(for sha256sum: the largest process of the find | xargs pipeline)"
  echo
  printf '%-10s %8s %15s %8s %8s %8s %13s\n' contestant 'wall s' 'wall range s' 'MB/s' 'vs ref' 'CPU s' 'peak RSS MiB'
  for c in csv reference sha256sum; do
    awk -v c="$c" -v t="$(median "$c")" -v r="$t_ref" -v b="$bytes" -v span="$(span "$c")" \
      -v cpu="$(median "$c" 4)" -v rss="$(peak "$c")" 'BEGIN {
      printf "%-10s %8.3f %15s %8.0f %7.1f%% %8.3f %13.1f\n", c, t, span, b / t / 1e6, 100 * r / t, cpu, rss / 1024 }'
  done
  echo
  awk -v c="$t_csv" -v r="$t_ref" -v s="$t_sum" -v cc="$c_csv" -v cr="$c_ref" -v rss="$(peak csv)" '
    BEGIN {
      pct = 100 * r / c
      printf "csv / reference = %.1f%%   (throughput, same run)\n", pct
      printf "csv / sha256sum = %.1fx\n", s / c
      printf "reference / sha256sum = %.1fx\n", s / r
      printf "CPU time: csv %.3f s, reference %.3f s (reference / csv = %.1f%%)\n", cc, cr, 100 * cr / cc
      printf "target csv >= 75%% of reference: %s (%.1f%%)\n", (pct >= 75 ? "PASS" : "FAIL"), pct
      printf "target csv peak RSS < 100 MiB:   %s (%.1f MiB)\n", (rss / 1024 < 100 ? "PASS" : "FAIL"), rss / 1024
    }'
  awk -v t=$((cpu1 - cpu0)) -v st=$((steal1 - steal0)) 'BEGIN {
    if (t > 0) printf "noise: CPU steal during the timed runs %.1f%% of all CPU time\n", 100 * st / t }'
  for c in csv reference sha256sum; do
    # Reads from storage over 1% of the corpus mean the files were not all
    # in the page cache (a few hundred KiB of metadata are normal).
    n=$(inblocks "$c")
    if ((n * 512 > bytes / 100)); then
      echo "noise: $c read $((n / 2)) KiB from storage over $runs runs: the page cache was not warm"
    fi
  done
} | tee "$tmp/results"
cp "$tmp/results" "$dir/bench-results.txt"
echo "run.sh: results written to $dir/bench-results.txt" >&2

if [[ $strict == 1 ]] && grep -q ': FAIL' "$tmp/results"; then
  exit 1
fi
