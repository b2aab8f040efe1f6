#!/usr/bin/env bash
# bench/manyfiles.sh [N [SIZE [DIR]]]
#
# Issue 18's trees of many small files: DIR/tree holds N ELF files of SIZE
# bytes (a valid 344-byte ELF program, examples/build/bin/tool, padded with
# bytes of its own, distinct per file), 1,000 to a directory, generated once
# (REBUILD=1 makes it again). Then, RUNS times interleaved on warm files:
#   csv        csv validate --policy ALL --format F --output R DIR/tree, for
#              each report format F in FORMATS (default: text json sarif
#              junit), ALL allowing every file (all: true);
#   reference  bench/refsha DIR/tree: walk, read and SHA-256 every file.
# It prints the median wall time of each, csv's throughput as a share of
# the reference's, the median CPU time (user and system), each one's peak
# RSS and peak anonymous memory (bench/rss: the RSS also counts the pages
# of the executable, which vary by some 10 MiB from one copy of one binary
# to another), and the load average before and after. Issue 18's
# targets at 100,000 files of 14 KB: csv at 85% of the reference or more,
# under 100 MiB for every format; at 1,000,000 files, under 150 MiB.
#
# BASE=/path/to/csv also runs that (earlier) csv binary, interleaved, as
# base-F for each format, and checks that both wrote the same report, but
# for the times a report states (bench/manyfiles.sh's way of saying the
# report bytes did not change).
#
# Defaults: N=100000, SIZE=14336, DIR=${TMPDIR:-/tmp}/csv-bench-many-N.
set -euo pipefail
n=${1:-100000}
size=${2:-14336}
dir=${3:-${TMPDIR:-/tmp}/csv-bench-many-$n}
runs=${RUNS:-3}
formats=${FORMATS:-text json sarif junit}
base=${BASE:-}
[[ -z $base || -x $base ]] || { echo "manyfiles.sh: BASE=$base is not an executable" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
seed=$root/examples/build/bin/tool
[[ -f $seed ]] || { echo "manyfiles.sh: no $seed" >&2; exit 2; }
((size >= $(stat -c %s "$seed") + 8)) || { echo "manyfiles.sh: SIZE must be at least $(($(stat -c %s "$seed") + 8))" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/csv-bench-many.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "manyfiles.sh: building csv, refsha and rss..." >&2
(cd "$root" && go build -o "$tmp/csv" ./cmd/csv && go build -o "$tmp/refsha" ./bench/refsha &&
  go build -o "$tmp/rss" ./bench/rss)

if [[ ${REBUILD:-0} == 1 || ! -f $dir/done ]]; then
  echo "manyfiles.sh: writing $n files of $size bytes into $dir/tree..." >&2
  rm -rf "$dir"
  mkdir -p "$dir/tree"
  # One padded file per directory of 1,000, then copies of it whose last
  # 8 bytes are the file's number: every file distinct, every file a valid
  # ELF (bytes after an ELF's tables are not read as any part of it).
  python3 - "$seed" "$n" "$size" "$dir/tree" <<'EOF'
import os, sys
seed, n, size, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
base = open(seed, "rb").read()
pad = bytes((i * 131 + 7) & 0xFF for i in range(size - len(base) - 8))
head = base + pad
for i in range(n):
    d = os.path.join(out, "d%04d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%07d" % i), "wb") as f:
        f.write(head + i.to_bytes(8, "little"))
EOF
  touch "$dir/done"
fi
printf 'format: csv-policy/v1\nname: all\nversion: 1.0.0\nrules:\n  - id: all\n    action: allow\n    all: true\n' >"$tmp/all.yaml"
echo "manyfiles.sh: warming the page cache..." >&2
find "$dir/tree" -type f -print0 | xargs -0 cat >/dev/null

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# run LABEL CMD...: one run under bench/rss; appends "LABEL WALL RSS_KIB".
run() {
  local label=$1 status=0 line
  shift
  "$tmp/rss" -q -label "$label" -- "$@" 2>"$tmp/stderr" || status=$?
  line=$(grep '^rss: ' "$tmp/stderr" | tail -n1 || true)
  if [[ $status != 0 || -z $line ]]; then
    echo "manyfiles.sh: $label exited with status $status:" >&2
    cat "$tmp/stderr" >&2
    exit 1
  fi
  awk -v l="$label" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    print l, v["wall_s"], v["maxrss_kib"], v["user_s"] + v["sys_s"], v["anon_kib"] }' <<<"$line" >>"$tmp/times"
}
# untimed REPORT: the report without the times it states (JSON started
# and duration_seconds, SARIF startTimeUtc and endTimeUtc, JUnit time and
# timestamp attributes).
untimed() {
  sed -E -e 's/"(started|duration_seconds|startTimeUtc|endTimeUtc)": [^,]*,?$/"\1": T/' \
    -e 's/ (time|timestamp)="[^"]*"/ \1="T"/g' "$1"
}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 0; r < runs; r++)); do
  run reference "$tmp/refsha" "$dir/tree"
  for f in $formats; do
    if [[ -n $base ]]; then
      run "base-$f" "$base" validate --policy "$tmp/all.yaml" --format "$f" --output "$tmp/base.$f" "$dir/tree"
    fi
    run "csv-$f" "$tmp/csv" validate --policy "$tmp/all.yaml" --format "$f" --output "$tmp/report.$f" "$dir/tree"
    if [[ -n $base ]] && ! cmp -s <(untimed "$tmp/base.$f") <(untimed "$tmp/report.$f"); then
      echo "manyfiles.sh: the $f report differs from BASE's:" >&2
      diff <(untimed "$tmp/base.$f") <(untimed "$tmp/report.$f") | head -20 >&2
      exit 1
    fi
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
ref=$(awk '$1 == "reference" {print $2}' "$tmp/times" | median)
printf '%d files of %d bytes, %d runs each, medians (bench/manyfiles.sh); load average %s before, %s after\n' "$n" "$size" "$runs" "$load_before" "$load_after"
printf '%-12s %8s %10s %8s %12s %10s\n' contestant wall_s "vs ref" cpu_s "peak_MiB" "anon_MiB"
for l in reference $(for f in $formats; do [[ -z $base ]] || echo "base-$f"; echo "csv-$f"; done); do
  t=$(awk -v l="$l" '$1 == l {print $2}' "$tmp/times" | median)
  c=$(awk -v l="$l" '$1 == l {print $4}' "$tmp/times" | median)
  m=$(awk -v l="$l" '$1 == l {print $3}' "$tmp/times" | sort -g | tail -n1)
  a=$(awk -v l="$l" '$1 == l {print $5}' "$tmp/times" | sort -g | tail -n1)
  awk -v l="$l" -v t="$t" -v r="$ref" -v c="$c" -v m="$m" -v a="$a" 'BEGIN { printf "%-12s %8.3f %9.1f%% %8.3f %12.1f %10.1f\n", l, t, 100 * r / t, c, m / 1024, a / 1024 }'
done
[[ -z $base ]] || echo "reports: csv's and BASE's are the same in every format, but for their times"
