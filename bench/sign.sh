#!/usr/bin/env bash
# bench/sign.sh [CORPUS_DIR]
#
# Signing throughput, on the same warm files in one run, with the same key
# and hash (SHA-256) for both tools: the corpus's RSA-3072 build key, then an
# RSA-2048 leaf issued by the corpus's intermediate CA:
#   csv          csv sign --out DIR over the corpus's unsigned PE files
#                (Authenticode, checksum, chain embedded; 2 workers)
#   osslsigncode osslsigncode sign, one process per file: one at a time (the
#                loop a user would script), and two at a time (xargs -P2)
#   floor        bench/refsign: only what no signer can skip (read, SHA-256
#                and copy every byte into a new file, one private-key
#                signature per file, syncfs, renames), no format at all
# Every timed command starts after a sync (untimed), and csv and the floor
# take turns going first, so that neither is timed writing back the other's
# files (before 2026-12-08 the floor always ran first and csv after it).
# Prints files per second and the ratios; target: csv >= 5x osslsigncode.
# osslsigncode's time over the floor's is the most any signer in Go could
# reach here; csv's time over the floor's is what csv adds to it.
# csv's per-file CPU is mostly the Authenticode hash, the kernel's copy into
# the signed file and the RSA signature (Go's constant-time RSA-3072 costs
# about 2.5 ms here, OpenSSL's less); csv also makes the signed files durable
# (writeback started per file, one syncfs before the renames), which
# osslsigncode does not.
#
# CORPUS_DIR defaults to ${TMPDIR:-/tmp}/csv-bench-corpus (bench/run.sh
# builds it). RUNS=3 by default.
set -euo pipefail
dir=${1:-${TMPDIR:-/tmp}/csv-bench-corpus}
runs=${RUNS:-3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
[[ -d $dir/build/win ]] || { echo "sign.sh: no corpus in $dir (run bench/run.sh first)" >&2; exit 2; }
command -v osslsigncode >/dev/null || { echo "sign.sh: osslsigncode is not installed" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/csv-sign.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/csv" ./cmd/csv && go build -o "$tmp/refsign" ./bench/refsign)
csv=$tmp/csv
# An RSA-2048 code-signing leaf from the corpus's intermediate CA.
openssl req -newkey rsa:2048 -nodes -keyout "$tmp/rsa2048.key" -out "$tmp/rsa2048.csr" -subj "/O=Example Corp/CN=Example Build Signing 2048" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n' >"$tmp/leaf.cnf"
openssl x509 -req -in "$tmp/rsa2048.csr" -CA "$dir/keys/inter.pem" -CAkey "$dir/keys/inter.key" -CAcreateserial -CAserial "$tmp/serial" \
  -out "$tmp/rsa2048.pem" -days 365 -extfile "$tmp/leaf.cnf" 2>/dev/null
# csv sign refuses a chain that does not reach its self-signed root (no
# verifier could build it): both chains end with the corpus root.
cat "$tmp/rsa2048.pem" "$dir/keys/inter.pem" "$dir/keys/root.pem" >"$tmp/rsa2048-chain.pem"
cat "$dir/keys/build-chain.pem" "$dir/keys/root.pem" >"$tmp/build-chain.pem"

# The unsigned PE files, in a tree of their own.
mkdir -p "$tmp/in"
find "$dir/build/win" -name '*-unsigned.exe' -exec cp {} "$tmp/in/" \;
n=$(find "$tmp/in" -type f | wc -l)
bytes=$(find "$tmp/in" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
cat "$tmp"/in/* >/dev/null

now() { date +%s.%N; }
measure() { # LABEL KEY CHAIN
local label=$1 key=$2 chain=$3
local -a tc=() to1=() to2=() tf=()
for ((i = 0; i < runs; i++)); do
  rm -rf "$tmp/out-csv" "$tmp/out-o1" "$tmp/out-o2" "$tmp/out-floor"
  mkdir -p "$tmp/out-o1" "$tmp/out-o2"
  # Each contestant starts with nothing dirty (sync, untimed), and csv and
  # the floor take turns going first: otherwise the second inherits the
  # first's writeback and the deleted trees' discards.
  if ((i % 2 == 0)); then
    sync
    tf0=$(now)
    "$tmp/refsign" "$key" "$tmp/in" "$tmp/out-floor" >/dev/null
    tf1=$(now)
    sync
    t0=$(now)
    "$csv" sign --key "$key" --cert "$chain" --out "$tmp/out-csv" --quiet "$tmp/in"
    t1=$(now)
  else
    sync
    t0=$(now)
    "$csv" sign --key "$key" --cert "$chain" --out "$tmp/out-csv" --quiet "$tmp/in"
    t1=$(now)
    sync
    tf0=$(now)
    "$tmp/refsign" "$key" "$tmp/in" "$tmp/out-floor" >/dev/null
    tf1=$(now)
  fi
  sync
  t1b=$(now)
  for f in "$tmp"/in/*; do
    osslsigncode sign -certs "$chain" -key "$key" -h sha256 -in "$f" -out "$tmp/out-o1/${f##*/}" >/dev/null
  done
  t2=$(now)
  sync
  t2b=$(now)
  find "$tmp/in" -type f -print0 | xargs -0 -P2 -I{} sh -c 'osslsigncode sign -certs "$1" -key "$2" -h sha256 -in "$3" -out "$4/$(basename "$3")" >/dev/null' _ "$chain" "$key" {} "$tmp/out-o2"
  t3=$(now)
  tc+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
  to1+=("$(awk -v a="$t1b" -v b="$t2" 'BEGIN { print b - a }')")
  to2+=("$(awk -v a="$t2b" -v b="$t3" 'BEGIN { print b - a }')")
  tf+=("$(awk -v a="$tf0" -v b="$tf1" 'BEGIN { print b - a }')")
  echo "  $label run $((i + 1))/$runs: csv ${tc[-1]}s  osslsigncode ${to1[-1]}s (-P2: ${to2[-1]}s)  floor ${tf[-1]}s" >&2
done
# Every file csv signed verifies with osslsigncode against the corpus root.
bad=0
for f in "$tmp"/out-csv/*; do
  osslsigncode verify -CAfile "$dir/keys/root.pem" -in "$f" >/dev/null 2>&1 || bad=$((bad + 1))
done
((bad == 0)) || { echo "sign.sh: $bad files csv signed do not verify with osslsigncode" >&2; exit 1; }
report "$label" "$(median "${tc[@]}")" "$(median "${to1[@]}")" "$(median "${to2[@]}")" "$(median "${tf[@]}")"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
report() { # LABEL CSV O1 O2 FLOOR
awk -v label="$1" -v n="$n" -v b="$bytes" -v c="$2" -v o1="$3" -v o2="$4" -v f="$5" 'BEGIN {
  printf "\n%s: unsigned PE files: %d (%.1f MB), SHA-256; all of csv'"'"'s verify with osslsigncode\n", label, n, b / 1e6
  printf "%-28s %9s %9s %8s\n", "contestant", "median s", "files/s", "csv is"
  printf "%-28s %9.3f %9.0f\n", "csv sign (default jobs)", c, n / c
  printf "%-28s %9.3f %9.0f %7.1fx\n", "osslsigncode, 1 at a time", o1, n / o1, o1 / c
  printf "%-28s %9.3f %9.0f %7.1fx\n", "osslsigncode, 2 at a time", o2, n / o2, o2 / c
  printf "%-28s %9.3f %9.0f %7.1fx\n", "floor (bench/refsign)", f, n / f, f / c
  printf "the floor is %.1fx osslsigncode (the most a Go signer can reach here); csv takes %.0f%% more time than the floor\n", o1 / f, 100 * (c / f - 1)
  printf "target csv >= 5x osslsigncode (one process per file): %s\n", (o1 / c >= 5 ? "PASS" : "FAIL")
}'
}

measure "RSA-3072 (the corpus build key)" "$dir/keys/build.key" "$tmp/build-chain.pem"
measure "RSA-2048" "$tmp/rsa2048.key" "$tmp/rsa2048-chain.pem"
