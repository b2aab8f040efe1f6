#!/usr/bin/env bash
# bench/containers.sh [DIR]
#
# Issue 14's benchmark: csv validate on a build that ships its binaries in
# containers, against the reference that only decompresses and hashes, on
# the same warm files in one run:
#   csv        csv validate --policy P --format json --output R DIR/build
#              (P is what csv policy new --level hash writes for the
#              members: every member is digested and judged)
#   reference  bench/refsha -members DIR/build: walk, and decompress with
#              csv's own readers and SHA-256 every member of every
#              container, on all cores, no parsing, no judging
#   flat       bench/refsha DIR/build: SHA-256 of the container files as
#              they lie (what judging them unopened would cost)
# Issue 14's target: csv within 75% of the reference and 100 MiB of memory.
#
# DIR defaults to ${TMPDIR:-/tmp}/csv-bench-containers. The build is made
# once from the main corpus (${TMPDIR:-/tmp}/csv-bench-corpus/build, made
# with bench/run.sh when absent), without its two 256 MiB files: a zip of
# the PE files (deflate -6), a tar.gz and a tar.zst of the ELF files, a
# Debian package of 60 of them (dpkg-deb -Zxz), and an OCI image layout archive
# whose two layers are the PE files (uncompressed tar) and the ELF files
# (tar.gz). REBUILD=1 rebuilds it; RUNS=5 interleaved runs, medians.
set -euo pipefail
dir=${1:-${TMPDIR:-/tmp}/csv-bench-containers}
runs=${RUNS:-5}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
corpus=${CORPUS:-${TMPDIR:-/tmp}/csv-bench-corpus}/build
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/csv-bench-cont.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "containers.sh: building csv, refsha and rss..." >&2
(cd "$root" && go build -o "$tmp/csv" ./cmd/csv && go build -o "$tmp/refsha" ./bench/refsha &&
  go build -o "$tmp/rss" ./bench/rss)
csv=$tmp/csv

if [[ ! -d $corpus ]]; then
  echo "containers.sh: no corpus in $corpus: run bench/run.sh first (or set CORPUS)" >&2
  exit 2
fi
for t in zip tar zstd dpkg-deb sha256sum; do
  command -v $t >/dev/null || { echo "containers.sh: $t is not installed" >&2; exit 2; }
done

build=$dir/build
if [[ ${REBUILD:-0} == 1 || ! -d $build ]]; then
  rm -rf "$build" "$dir/src"
  mkdir -p "$build" "$dir/src/win" "$dir/src/linux"
  echo "containers.sh: making the containers from $corpus..." >&2
  find "$corpus/win" -maxdepth 1 -type f ! -name 'big-*' -exec cp {} "$dir/src/win/" \;
  find "$corpus/linux" -maxdepth 1 -type f ! -name 'big-*' -exec cp {} "$dir/src/linux/" \;
  (cd "$dir/src" && zip -q -r -6 "$build/win.zip" win)
  (cd "$dir/src" && tar -czf "$build/linux.tar.gz" linux)
  (cd "$dir/src" && tar -cf - linux | zstd -q -3 -o "$build/linux.tar.zst")
  pkg=$tmp/pkg
  mkdir -p "$pkg/DEBIAN" "$pkg/usr/lib/bench"
  # xz decompresses at some 10 MB/s in Go (ulikunitz/xz) against 300 MB/s
  # and more for gzip and zstd: a package of the first 60 files keeps the
  # run short, as real packages are small.
  find "$dir/src/linux" -type f | sort | head -n 60 | xargs cp -t "$pkg/usr/lib/bench/"
  printf 'Package: csv-bench\nVersion: 1.0\nArchitecture: amd64\nMaintainer: csv <csv@example.com>\nDescription: csv bench\n' >"$pkg/DEBIAN/control"
  dpkg-deb -Zxz -z6 --root-owner-group --build "$pkg" "$build/bench.deb" >/dev/null
  # An OCI image layout archive: two layers, a config, a manifest, an index.
  oci=$tmp/oci
  mkdir -p "$oci/blobs/sha256"
  blob() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); mv "$1" "$oci/blobs/sha256/$d"; echo "$d $(stat -c %s "$oci/blobs/sha256/$d")"; }
  (cd "$dir/src" && tar -cf "$tmp/l1" win)
  (cd "$dir/src" && tar -cf "$tmp/l2" linux)
  id1=$(sha256sum "$tmp/l1" | cut -d' ' -f1)
  id2=$(sha256sum "$tmp/l2" | cut -d' ' -f1)
  gzip -n "$tmp/l2" && mv "$tmp/l2.gz" "$tmp/l2"
  read -r d1 s1 < <(blob "$tmp/l1")
  read -r d2 s2 < <(blob "$tmp/l2")
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]},"config":{}}' "$id1" "$id2" >"$tmp/cfg"
  read -r dc sc < <(blob "$tmp/cfg")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$dc" "$sc" "$d1" "$s1" "$d2" "$s2" >"$tmp/man"
  read -r dm sm < <(blob "$tmp/man")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s}]}' "$dm" "$sm" >"$oci/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
  (cd "$oci" && tar -cf "$build/image.tar" oci-layout index.json blobs)
fi

echo "containers.sh: policy new over the members..." >&2
"$csv" policy new --level hash --name containers-bench "$build" >"$tmp/policy.yaml" 2>"$tmp/pn.err" || { cat "$tmp/pn.err" >&2; exit 1; }
if [[ -s $tmp/pn.err ]]; then
  echo "containers.sh: csv policy new found members it cannot judge:" >&2
  cat "$tmp/pn.err" >&2
  exit 1
fi

read -r files bytes < <(find "$build" -type f -printf '%s\n' | awk '{n++; s+=$1} END {printf "%d %d\n", n, s}')
echo "containers.sh: $files containers, $bytes bytes; warming the page cache..." >&2
find "$build" -type f -print0 | xargs -0 cat >/dev/null

time_it() {
  local label=$1
  shift
  local status=0
  "$tmp/rss" -q -label "$label" -- "$@" >"$tmp/stdout" 2>"$tmp/stderr" || status=$?
  local line
  line=$(grep '^rss: ' "$tmp/stderr" | tail -n1 || true)
  if [[ $status != 0 || -z $line ]]; then
    echo "containers.sh: $label exited with status $status:" >&2
    cat "$tmp/stderr" >&2
    exit 1
  fi
  awk -v l="$label" '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    print l, v["wall_s"], v["maxrss_kib"], v["user_s"] + v["sys_s"], v["anon_kib"]
  }' <<<"$line" >>"$tmp/times"
}

: >"$tmp/times"
for ((i = 1; i <= runs; i++)); do
  time_it csv "$csv" validate --quiet --policy "$tmp/policy.yaml" --format json --output "$tmp/report.json" "$build"
  grep -q '"blocked": 0' "$tmp/report.json" || { echo "containers.sh: csv blocked files:" >&2; grep -m5 -B2 -A12 '"verdict": "blocked' "$tmp/report.json" >&2; exit 1; }
  time_it reference "$tmp/refsha" -members "$build"
  time_it flat "$tmp/refsha" "$build"
  echo "  run $i/$runs: $(awk -v i="$i" 'NR > (i-1)*3 { printf "%s %.3fs  ", $1, $2 }' "$tmp/times")" >&2
done
judged=$(grep -m1 '"files":' "$tmp/report.json" | tr -dc 0-9)
"$tmp/refsha" -members "$build" >"$tmp/ref.out"
read -r expanded members < <(awk '{print $2, $8}' "$tmp/ref.out")

awk -v bytes="$bytes" -v files="$files" -v judged="$judged" -v expanded="$expanded" -v members="$members" '
  { w[$1] = w[$1] " " $2; c[$1] = c[$1] " " $4; if ($3 > m[$1]) m[$1] = $3; if ($5 > a[$1]) a[$1] = $5 }
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    printf "%d containers, %.1f MB on disk, %.1f MB of members once decompressed; %d members; csv judged %d binaries\n", files, bytes / 1e6, expanded / 1e6, members, judged
    printf "%-10s %8s %14s %9s %8s %13s %9s\n", "contestant", "wall s", "member MB/s", "vs ref", "CPU s", "peak RSS MiB", "anon MiB"
    ref = median(w["reference"])
    for (k in w) {
      t = median(w[k])
      printf "%-10s %8.3f %14.0f %8.1f%% %8.3f %13.1f %9.1f\n", k, t, expanded / 1e6 / t, 100 * ref / t, median(c[k]), m[k] / 1024, a[k] / 1024
    }
    printf "csv / reference = %.1f%% (issue 14 target: at least 75%%; peak RSS under 100 MiB)\n", 100 * ref / median(w["csv"])
  }' "$tmp/times" | tee "$dir/bench-results.txt"
