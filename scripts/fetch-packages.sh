#!/bin/sh
# fetch-packages.sh DIR: download real-world packages that ship binaries, as
# they are published, into DIR, for the container tests of csv (which look
# in $CSV_PACKAGES, default /tmp/csv-packages):
#   linux-image.deb        Debian's kernel image package (the current
#                          linux-image-amd64 dependency): some 4,000 kernel
#                          modules signed with Debian's module key, in a
#                          data.tar.xz, and vmlinuz, an EFI PE signed by
#                          Debian's Secure Boot key
#   esbuild-win32-x64.tgz  npm's @esbuild/win32-x64: package/esbuild.exe
#   esbuild-linux-x64.tgz  npm's @esbuild/linux-x64: package/bin/esbuild
# Needs apt-get (Debian's archive) and npm (the npm registry). Idempotent and
# quiet: files already in DIR are kept; only errors are printed. Nothing is
# committed: the files are third-party data.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -s "$dir/linux-image.deb" ] && command -v apt-get >/dev/null; then
	if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
		apt-get update -qq >/dev/null
	fi
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	if [ -n "$pkg" ]; then
		(cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1) || true
		for f in "$tmp"/*.deb; do
			[ -s "$f" ] && mv "$f" "$dir/linux-image.deb"
		done
	fi
	[ -s "$dir/linux-image.deb" ] || echo "fetch-packages.sh: could not download Debian's kernel image package" >&2
fi

for arch in win32-x64 linux-x64; do
	out=$dir/esbuild-$arch.tgz
	[ -s "$out" ] && continue
	command -v npm >/dev/null || { echo "fetch-packages.sh: no npm: @esbuild/$arch not fetched" >&2; continue; }
	if (cd "$tmp" && npm pack --silent "@esbuild/$arch@0.28.2" >/dev/null 2>&1); then
		mv "$tmp"/esbuild-$arch-*.tgz "$out"
	else
		echo "fetch-packages.sh: could not fetch @esbuild/$arch from the npm registry" >&2
	fi
done
