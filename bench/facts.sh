#!/usr/bin/env bash
# bench/facts.sh [N [FILES [DIR]]]
#
# Issue 20's benchmark: re-judging recorded facts against validating the
# files themselves. bench/factsgen writes DIR/facts-N.jsonl, N generated
# records (90% ELF files of 14 KB, 10% PE files signed by a build chain,
# as csv validate --record writes them), and the policy DIR/policy.yaml
# (a signer rule for the PE files, an ELF rule); DIR/tree holds FILES
# real ELF files of 14 KB, as bench/manyfiles.sh writes them (a million
# files is more than this machine's disk and time allow: the per-file
# cost is extrapolated). Then, RUNS times interleaved, each under
# bench/rss, with FORMAT reports (default text):
#   files    csv validate --policy P DIR/tree
#   record   csv validate --policy P --record R DIR/tree (every fact of
#            every file, in the same read: what recording costs)
#   facts    csv validate --policy P --facts DIR/facts-N.jsonl
# It prints each one's median wall time and CPU time (user+sys: on a
# machine other work shares, wall time counts the others' turns), per
# file or record, the ratios of judging a record to validating a file,
# each one's peak RSS (facts: bounded, whatever N), and the load average.
#
# Defaults: N=1000000, FILES=100000, DIR=${TMPDIR:-/tmp}/csv-bench-facts.
set -euo pipefail
n=${1:-1000000}
files=${2:-100000}
dir=${3:-${TMPDIR:-/tmp}/csv-bench-facts}
runs=${RUNS:-3}
format=${FORMAT:-text}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
seed=$root/examples/build/bin/tool
tmp=$(mktemp -d "${TMPDIR:-/tmp}/csv-bench-facts.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "facts.sh: building csv, factsgen and rss..." >&2
(cd "$root" && go build -o "$tmp/csv" ./cmd/csv && go build -o "$tmp/factsgen" ./bench/factsgen &&
  go build -o "$tmp/rss" ./bench/rss)
mkdir -p "$dir"
if [[ ! -f $dir/facts-$n.jsonl || ! -f $dir/policy.yaml ]]; then
  echo "facts.sh: writing $n records..." >&2
  "$tmp/factsgen" -n "$n" -o "$dir/facts-$n.jsonl" -policy "$dir/policy.yaml"
fi
if [[ ! -f $dir/tree-$files.done ]]; then
  echo "facts.sh: writing $files files of 14336 bytes into $dir/tree..." >&2
  rm -rf "$dir/tree"
  mkdir -p "$dir/tree"
  python3 - "$seed" "$files" 14336 "$dir/tree" <<'PY'
import os, sys
seed, n, size, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
base = open(seed, "rb").read()
head = base + bytes((i * 131 + 7) & 0xFF for i in range(size - len(base) - 8))
for i in range(n):
    d = os.path.join(out, "d%04d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%07d" % i), "wb") as f:
        f.write(head + i.to_bytes(8, "little"))
PY
  touch "$dir/tree-$files.done"
fi
echo "facts.sh: warming the page cache..." >&2
find "$dir/tree" -type f -print0 | xargs -0 cat >/dev/null
cat "$dir/facts-$n.jsonl" >/dev/null

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() {
  local label=$1 status=0 line
  shift
  "$tmp/rss" -q -label "$label" -- "$@" 2>"$tmp/stderr" || status=$?
  line=$(grep '^rss: ' "$tmp/stderr" | tail -n1 || true)
  if [[ $status != 0 || -z $line ]]; then
    echo "facts.sh: $label exited with status $status:" >&2
    cat "$tmp/stderr" >&2
    exit 1
  fi
  awk -v l="$label" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    print l, v["wall_s"], v["maxrss_kib"], v["user_s"] + v["sys_s"] }' <<<"$line" >>"$tmp/times"
}
for ((r = 0; r < runs; r++)); do
  run files "$tmp/csv" validate --policy "$dir/policy.yaml" --format "$format" --output "$tmp/files.out" "$dir/tree"
  run record "$tmp/csv" validate --policy "$dir/policy.yaml" --format "$format" --output "$tmp/record.out" --record "$tmp/rec.jsonl" "$dir/tree"
  run facts "$tmp/csv" validate --policy "$dir/policy.yaml" --format "$format" --output "$tmp/facts.out" --facts "$dir/facts-$n.jsonl"
done
printf '%d records, %d files of 14336 bytes, %s reports, %d runs each, medians (bench/facts.sh)\n' "$n" "$files" "$format" "$runs"
printf '%-8s %10s %12s %10s %12s %12s\n' run wall_s "us/item" cpu_s "cpu_us/item" peak_MiB
per() { [[ $1 == facts ]] && echo "$n" || echo "$files"; }
for l in files record facts; do
  t=$(awk -v l="$l" '$1 == l {print $2}' "$tmp/times" | median)
  u=$(awk -v l="$l" '$1 == l {print $4}' "$tmp/times" | median)
  m=$(awk -v l="$l" '$1 == l {print $3}' "$tmp/times" | sort -g | tail -n1)
  awk -v l="$l" -v t="$t" -v u="$u" -v c="$(per "$l")" -v m="$m" 'BEGIN { printf "%-8s %10.3f %12.2f %10.3f %12.2f %12.1f\n", l, t, 1e6 * t / c, u, 1e6 * u / c, m / 1024 }'
done
f=$(awk '$1 == "files" {print $2}' "$tmp/times" | median)
j=$(awk '$1 == "facts" {print $2}' "$tmp/times" | median)
fu=$(awk '$1 == "files" {print $4}' "$tmp/times" | median)
ju=$(awk '$1 == "facts" {print $4}' "$tmp/times" | median)
awk -v f="$f" -v j="$j" -v n="$n" -v c="$files" 'BEGIN { printf "judging a record is %.1fx faster than validating a file (wall time)\n", (f / c) / (j / n) }'
awk -v f="$fu" -v j="$ju" -v n="$n" -v c="$files" 'BEGIN { printf "and takes %.1fx less CPU (user+sys)\n", (f / c) / (j / n) }'
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"
