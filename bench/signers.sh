#!/usr/bin/env bash
# bench/signers.sh [CORPUS_DIR]
#
# Signature verification throughput, on the same warm files in one run:
#   csv          csv validate with a signer-rule policy (csv policy new --level
#                pca --fallback hash) over the corpus's signed PE files, JSON
#                report: every file read once, image hash, PKCS#7 verified,
#                chain built, policy judged
#   osslsigncode osslsigncode verify -CAfile root.pem, one process per file,
#                over the same files: one at a time (the loop a user would
#                script), and two at a time (xargs -P2, both cores)
#   reference    bench/refsha over the same files (read and SHA-256 each, on
#                GOMAXPROCS workers: the physical limit, as in bench/run.sh)
#   reference+verify  bench/refsha -verify build.key: the same, and one RSA
#                signature verified per file with the build key (what no
#                verifier of a signed file can skip; csv checks each file's
#                signature, and its timestamp's, as osslsigncode does)
# Prints files per second and the ratios; targets: csv >= 10x osslsigncode,
# csv >= 90% of the reference (issue 18).
# Both sides hash every file, so with these 2-6 MB files the two-process
# ratio is bounded by hashing speed (see the README).
#
# The corpus's 120 signed files are 12 distinct ones (copies of one build
# under many names, as a build ships a DLL in several places): csv verifies
# each distinct signature once (signing/verifycache.go), the references do
# not. DISTINCT=1 measures 120 distinct files instead: each unsigned PE file
# of the corpus, copied with a unique 8-byte overlay, signed by csv sign with
# the build key; then every file's signature is checked.
#
# CORPUS_DIR defaults to ${TMPDIR:-/tmp}/csv-bench-corpus (bench/run.sh
# builds it; so does ../shared/bench/make-corpus.sh DIR medium). RUNS=3 by
# default.
set -euo pipefail
dir=${1:-${TMPDIR:-/tmp}/csv-bench-corpus}
runs=${RUNS:-3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
[[ -d $dir/build/win ]] || { echo "signers.sh: no corpus in $dir (run bench/run.sh first)" >&2; exit 2; }
command -v osslsigncode >/dev/null || { echo "signers.sh: osslsigncode is not installed" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/csv-signers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/csv" ./cmd/csv && go build -o "$tmp/refsha" ./bench/refsha)
csv=$tmp/csv

# The signed PE files (build-signed and rogue-signed), small ones only: the
# 256 MiB file would measure hashing, not verification.
find "$dir/build/win" -name '*-signed.exe' -size -64M -o -name '*-rogue.exe' -size -64M | sort >"$tmp/files"
if [[ ${DISTINCT:-0} == 1 ]]; then
  mkdir "$tmp/distinct-in"
  mapfile -t unsigned < <(find "$dir/build/win" -name '*-unsigned.exe' -size -64M | sort)
  for ((i = 0; i < $(wc -l <"$tmp/files"); i++)); do
    f="$tmp/distinct-in/d$i.exe"
    cp "${unsigned[i % ${#unsigned[@]}]}" "$f"
    printf '%08d' "$i" >>"$f"
  done
  cat "$dir/keys/build-chain.pem" "$dir/keys/root.pem" >"$tmp/chain.pem"
  "$csv" sign --key "$dir/keys/build.key" --cert "$tmp/chain.pem" --out "$tmp/distinct" --quiet "$tmp/distinct-in"
  find "$tmp/distinct" -name '*.exe' | sort >"$tmp/files"
fi
n=$(wc -l <"$tmp/files")
bytes=$(xargs stat -c %s <"$tmp/files" | awk '{s += $1} END {print s}')
"$csv" policy new --level pca --fallback hash --name signers --output "$tmp/policy.yaml" $(cat "$tmp/files") 2>/dev/null
xargs cat <"$tmp/files" >/dev/null # warm the page cache
# refsha walks a directory: the same files, linked (copied across file
# systems) into one, which csv validates too.
mkdir "$tmp/signed"
while read -r f; do ln "$f" "$tmp/signed/" 2>/dev/null || cp "$f" "$tmp/signed/"; done <"$tmp/files"

now() { date +%s.%N; }
declare -a tc to1 to2 tr trv
for ((i = 0; i < runs; i++)); do
  tv0=$(now)
  "$tmp/refsha" -verify "$dir/keys/build.key" "$tmp/signed" >/dev/null
  tr0=$(now)
  "$tmp/refsha" "$tmp/signed" >/dev/null
  t0=$(now)
  "$csv" validate --policy "$tmp/policy.yaml" --format json --output "$tmp/report.json" --quiet "$tmp/signed"
  t1=$(now)
  xargs -n1 osslsigncode verify -CAfile "$dir/keys/root.pem" -in <"$tmp/files" >/dev/null 2>&1 || true
  t2=$(now)
  xargs -P2 -n1 osslsigncode verify -CAfile "$dir/keys/root.pem" -in <"$tmp/files" >/dev/null 2>&1 || true
  t3=$(now)
  tc+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
  to1+=("$(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }')")
  to2+=("$(awk -v a="$t2" -v b="$t3" 'BEGIN { print b - a }')")
  tr+=("$(awk -v a="$tr0" -v b="$t0" 'BEGIN { print b - a }')")
  trv+=("$(awk -v a="$tv0" -v b="$tr0" 'BEGIN { print b - a }')")
  echo "  run $((i + 1))/$runs: csv ${tc[-1]}s  reference ${tr[-1]}s (+verify ${trv[-1]}s)  osslsigncode ${to1[-1]}s (-P2: ${to2[-1]}s)  load $(cut -d' ' -f1 /proc/loadavg)" >&2
done
# Every file must be judged and allowed, and osslsigncode must accept the
# build-signed ones (the rogue ones fail its chain check, as they should).
grep -q '"blocked": 0' "$tmp/report.json" || { echo "signers.sh: csv blocked files" >&2; exit 1; }
ok=0
while read -r f; do
  osslsigncode verify -CAfile "$dir/keys/root.pem" -in "$f" >/dev/null 2>&1 && ok=$((ok + 1))
done <"$tmp/files"

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mc=$(median "${tc[@]}") mo1=$(median "${to1[@]}") mo2=$(median "${to2[@]}") mr=$(median "${tr[@]}") mrv=$(median "${trv[@]}")
awk -v n="$n" -v b="$bytes" -v c="$mc" -v o1="$mo1" -v o2="$mo2" -v r="$mr" -v rv="$mrv" -v ok="$ok" -v distinct="$(xargs sha256sum <"$tmp/files" | awk '{print $1}' | sort -u | wc -l)" -v cpus="$(nproc)" 'BEGIN {
  printf "signed PE files: %d (%.1f MB, %d distinct); osslsigncode accepted %d (the others are rogue-signed)\n", n, b / 1e6, distinct, ok
  printf "%-26s %9s %9s %8s\n", "contestant", "median s", "files/s", "csv is"
  printf "%-26s %9.3f %9.0f\n", "csv validate (default jobs)", c, n / c
  printf "%-26s %9.3f %9.0f %7.1fx\n", "osslsigncode, 1 at a time", o1, n / o1, o1 / c
  printf "%-26s %9.3f %9.0f %7.1fx\n", "osslsigncode, 2 at a time", o2, n / o2, o2 / c
  printf "%-26s %9.3f %9.0f\n", "reference (bench/refsha)", r, n / r
  printf "%-26s %9.3f %9.0f\n", "reference + RSA verify", rv, n / rv
  printf "csv / reference = %.1f%% (target >= 90%%); csv / (reference + one RSA verification a file) = %.1f%%\n", 100 * r / c, 100 * rv / c
  printf "target csv >= 10x osslsigncode (one process per file): %s\n", (o1 / c >= 10 ? "PASS" : "FAIL")
  printf "hash-bound ceiling against 2 processes: ~%.1fx (csv hashes at most ~2.6 GB/s here)\n", (n / o2 > 0 ? (b / 2.6e9 < c ? o2 / (b / 2.6e9) : 0) : 0)
}'
