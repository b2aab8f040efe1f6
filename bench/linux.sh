#!/usr/bin/env bash
# bench/linux.sh [CORPUS]
#
# Issue 16's benchmarks, each against its peer in the same run, on warm
# files:
#   fs-verity  csv validate --policy P --format json --output R DIR, where
#              P allows every file by its fsverity_sha256 (so csv computes
#              the fs-verity digest of every ELF file, on every core),
#              against `fsverity digest` run once per file (the peer that
#              also writes P's digests), RUNS interleaved runs, medians.
#   dm-verity  csv validate of a directory holding a 1 GiB ext4 image and
#              its hash device (csv checks the image against
#              IMAGE.verity and judges its root hash by a dmverity_sha256
#              rule) against `veritysetup format` of the image, one run
#              each (DMVERITY=0 skips it).
# Issue 16's target: csv at least 2x each peer.
#
# CORPUS defaults to the medium corpus's ELF files,
# ${TMPDIR:-/tmp}/csv-bench-corpus/build/linux (bench/run.sh builds it).
set -euo pipefail
corpus=${1:-${TMPDIR:-/tmp}/csv-bench-corpus/build/linux}
runs=${RUNS:-3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
for t in fsverity veritysetup mkfs.ext4; do
  command -v $t >/dev/null || { echo "linux.sh: $t is not installed" >&2; exit 2; }
done
[[ -d $corpus ]] || { echo "linux.sh: no corpus in $corpus: run bench/run.sh first" >&2; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/csv-bench-linux.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/csv" ./cmd/csv)
csv=$tmp/csv

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

mapfile -t files < <(find "$corpus" -type f | sort)
bytes=$(cat "${files[@]}" | wc -c) # also warms the page cache
echo "linux.sh: ${#files[@]} files, $((bytes >> 20)) MiB in $corpus" >&2

peer() {
  for f in "${files[@]}"; do fsverity digest --compact "$f"; done
}
{
  printf 'format: csv-policy/v1\nname: fsverity-bench\nversion: "1"\nrules:\n'
  peer | awk '{printf "  - {id: f%d, action: allow, fsverity_sha256: %s}\n", NR, $1}'
} > "$tmp/policy.yaml"

declare -a tc tp
for ((i = 0; i < runs; i++)); do
  t0=$(now)
  "$csv" validate --policy "$tmp/policy.yaml" --format json --output "$tmp/report.json" "$corpus" || {
    echo "linux.sh: csv validate failed (exit $?)" >&2; exit 1; }
  t1=$(now)
  peer > /dev/null
  t2=$(now)
  tc+=("$(echo "$t1 - $t0" | bc)")
  tp+=("$(echo "$t2 - $t1" | bc)")
done
c=$(printf '%s\n' "${tc[@]}" | median)
p=$(printf '%s\n' "${tp[@]}" | median)
printf '\nfs-verity digests, %d files, %d MiB, median of %d runs\n' "${#files[@]}" $((bytes >> 20)) "$runs"
printf '  csv validate (fsverity_sha256 rules)  %6.2f s  %7.1f MB/s\n' "$c" "$(echo "$bytes / $c / 1000000" | bc -l)"
printf '  fsverity digest, one file at a time   %6.2f s  %7.1f MB/s\n' "$p" "$(echo "$bytes / $p / 1000000" | bc -l)"
printf '  ratio (peer / csv)                    %6.2f x\n' "$(echo "$p / $c" | bc -l)"

[[ ${DMVERITY:-1} == 1 ]] || exit 0
img=$tmp/images/root.img
mkdir -p "$tmp/images"
mkfs.ext4 -q -F "$img" 1G
cat "$img" > /dev/null
t0=$(now)
out=$(veritysetup format "$img" "$tmp/peer.verity")
t1=$(now)
rh=$(awk '/^Root hash:/ {print $3}' <<<"$out")
mv "$tmp/peer.verity" "$img.verity"
printf 'format: csv-policy/v1\nname: dmverity-bench\nversion: "1"\nrules:\n  - {id: root, action: allow, dmverity_sha256: %s}\n' "$rh" > "$tmp/image.yaml"
t2=$(now)
"$csv" validate --policy "$tmp/image.yaml" --format json --output "$tmp/image.json" "$tmp/images" || {
  echo "linux.sh: csv validate of the image failed (exit $?)" >&2; exit 1; }
t3=$(now)
vs=$(echo "$t1 - $t0" | bc)
cv=$(echo "$t3 - $t2" | bc)
printf '\ndm-verity root hash of a 1 GiB ext4 image, one run\n'
printf '  csv validate (checks IMAGE.verity)    %6.2f s\n' "$cv"
printf '  veritysetup format                    %6.2f s\n' "$vs"
printf '  ratio (peer / csv)                    %6.2f x\n' "$(echo "$vs / $cv" | bc -l)"
