#!/bin/sh
# fetch-debian-efi.sh DIR: unpack Debian's Microsoft-signed shim and
# Debian-signed GRUB into DIR (without installing them), for the tests of
# signing/authenticode, which look in $CSV_DEBIAN_EFI (default
# /tmp/csv-debian-efi). Needs apt-get and dpkg-deb (a Debian or Ubuntu
# machine) and runs as root in CI. Idempotent and quiet: it does nothing when
# DIR already holds the files, and prints only errors.
#
# What the tests use from DIR:
#   usr/lib/shim/shimx64.efi.signed                    (shim-signed: two
#       WIN_CERTIFICATE entries, Microsoft UEFI CA 2011 and 2023 chains)
#   usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed  (grub-efi-amd64-signed:
#       signed by Debian Secure Boot Signer 2022, issued by Debian Secure
#       Boot CA)
# Neither package ships the Debian Secure Boot CA as a file (bookworm): shim
# embeds it as its vendor certificate, where the tests find it.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
pkgs="shim-signed grub-efi-amd64-signed"

if [ -f "$dir/usr/lib/shim/shimx64.efi.signed" ] && [ -f "$dir/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed" ]; then
	exit 0
fi

# A fresh machine's package lists can be empty: update them once if apt
# does not know the packages.
for p in $pkgs; do
	if ! apt-cache show "$p" >/dev/null 2>&1; then
		apt-get update -qq >/dev/null
		break
	fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# apt downloads as the unprivileged _apt user where it exists: let it write.
if id _apt >/dev/null 2>&1; then
	chown _apt "$tmp" 2>/dev/null || chmod 777 "$tmp"
fi
(cd "$tmp" && apt-get download -qq $pkgs >/dev/null)

mkdir -p "$dir"
for deb in "$tmp"/*.deb; do
	dpkg-deb -x "$deb" "$dir"
done

for f in usr/lib/shim/shimx64.efi.signed usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed; do
	if [ ! -f "$dir/$f" ]; then
		echo "$0: $f is not in the packages ($pkgs); update this script" >&2
		exit 1
	fi
done
