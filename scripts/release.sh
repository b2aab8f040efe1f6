#!/usr/bin/env bash
# release.sh: build csv's release files, and sign them with csv itself.
#
#   scripts/release.sh [--snapshot] [--out DIR] [--targets "OS/ARCH ..."] [all|build|package]
#
# build    builds csv and csv-kms for every target (default: linux, windows
#          and darwin on amd64 and arm64; with --snapshot only linux/amd64)
#          with -trimpath and the version, commit and commit date in
#          -ldflags, into DIR/stage/csv_VERSION_OS_ARCH/ beside LICENSE,
#          README.md, CHANGELOG.md, SECURITY.md and THIRD_PARTY_LICENSES.
#          csv-kms (cmd/csv-kms) is csv with the cloud KMS providers linked:
#          csv leaves them out (they doubled its size and slowed its start)
#          and hands a command whose --key is a KMS reference to the csv-kms
#          in its own directory, so the two always ship together.
# package  signs and packs what build left in DIR/stage (the release workflow
#          builds on three runners and packages once):
#          - csv sign gives the Windows binaries (csv.exe, csv-kms.exe) an
#            Authenticode signature and the Linux binaries (csv, csv-kms) an
#            appended signature, after validating them against a hash policy
#            of themselves, and writes per target the signed manifest
#            csv_VERSION_OS_ARCH.manifest.sigstore.json of both, which csv
#            verify-manifest checks (csv does not judge Mach-O files: the
#            darwin binaries have no manifest, and are covered by SHA256SUMS);
#          - an SBOM per binary (CycloneDX, by cyclonedx-gomod of the binary):
#            csv_VERSION_OS_ARCH.sbom.cdx.json of csv and
#            csv_VERSION_OS_ARCH.csv-kms.sbom.cdx.json of csv-kms;
#          - csv_VERSION_OS_ARCH.tar.gz (.zip for windows) holding both
#            binaries, reproducible: the commit's time on every file, names
#            sorted, no owner;
#          - SHA256SUMS of every file, and its Sigstore bundle
#            SHA256SUMS.sigstore.json by csv sign --bundle.
# all      both (the default).
#
# Environment:
#   VERSION                   the version (vMAJOR.MINOR.PATCH); default: the
#                             tag at HEAD; a release needs one, a snapshot is
#                             v0.0.0-snapshot-COMMIT without
#   CSV_RELEASE_KEY           csv sign --key: a key file, pkcs11: URI or KMS
#                             reference (awskms://, gcpkms://, azurekms://,
#                             hashivault://; the packaging csv hands these to
#                             the csv-kms copied or built beside it)
#   CSV_RELEASE_CERT          csv sign --cert: the signer's chain (PEM), up to its self-signed root
#   CSV_RELEASE_ROOT          the root the chain ends at: the manifests are
#                             verified against it before anything is packed
#   CSV_RELEASE_TIMESTAMP_URL csv sign --timestamp-url (optional)
#   CSV_CGO_TARGETS           targets built with CGO_ENABLED=1 (PKCS#11 keys
#                             need cgo), e.g. "linux/amd64 linux/arm64";
#                             CC_OS_ARCH (CC_linux_arm64=aarch64-linux-gnu-gcc)
#                             names a cross compiler
#   CSV_SBOM                  cyclonedx (default), or none (snapshots only)
#
# --snapshot builds without a tag, and without CSV_RELEASE_KEY signs with a
# throwaway CA it writes to DIR/snapshot-pki (never publish such a build).
set -euo pipefail
cd "$(dirname "$0")/.."

# The SBOM generator, run as a pinned go run: never in the module's go.mod.
CYCLONEDX=github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0
ALL_TARGETS="linux/amd64 linux/arm64 windows/amd64 windows/arm64 darwin/amd64 darwin/arm64"

snapshot=0
out=dist
targets=""
step=all
die() {
	echo "release.sh: $*" >&2
	exit 2
}
while (($#)); do
	case $1 in
	--snapshot) snapshot=1 ;;
	--out) out=${2:?--out needs a directory}; shift ;;
	--out=*) out=${1#--out=} ;;
	--targets) targets=${2:?--targets needs a list}; shift ;;
	--targets=*) targets=${1#--targets=} ;;
	all | build | package) step=$1 ;;
	*) die "unknown argument $1 (usage: release.sh [--snapshot] [--out DIR] [--targets \"OS/ARCH ...\"] [all|build|package])" ;;
	esac
	shift
done
if [[ -z $targets ]]; then
	if ((snapshot)); then targets=linux/amd64; else targets=$ALL_TARGETS; fi
fi
for t in $targets; do
	[[ " $ALL_TARGETS " == *" $t "* ]] || die "target $t is not one of: $ALL_TARGETS"
done

if ((!snapshot)) && [[ $step != build && -z ${CSV_RELEASE_KEY:-} ]]; then
	die "CSV_RELEASE_KEY and CSV_RELEASE_CERT are required: a release is signed"
fi

commit=$(git rev-parse HEAD)
# The commit's time, not the clock's: the same commit builds the same files.
date=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD)
if [[ -z ${VERSION:-} ]]; then
	VERSION=$(git describe --tags --exact-match --match 'v[0-9]*' HEAD 2>/dev/null || true)
fi
if [[ -z $VERSION ]]; then
	((snapshot)) || die "HEAD has no vX.Y.Z tag: tag the release, set VERSION, or build a --snapshot"
	VERSION=v0.0.0-snapshot-${commit:0:12}
fi
[[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || die "VERSION $VERSION is not vMAJOR.MINOR.PATCH[-PRERELEASE]"
if ((!snapshot)) && [[ -n $(git status --porcelain --untracked-files=no) ]]; then
	die "the checkout has uncommitted changes: a release is built from its commit alone"
fi
name_of() { echo "csv_${VERSION#v}_${1%/*}_${1#*/}"; }

mkdir -p "$out/stage"
out=$(cd "$out" && pwd)
stage=$out/stage
pkg=github.com/codesignval/csv/internal/cli/version
ldflags="-s -w -X $pkg.Version=$VERSION -X $pkg.Commit=$commit -X $pkg.Date=$date"

build() {
	local t os arch dir exe sfx cgo cc
	for t in $targets; do
		os=${t%/*} arch=${t#*/}
		dir=$stage/$(name_of "$t")
		sfx=""
		[[ $os == windows ]] && sfx=.exe
		cgo=0
		[[ " ${CSV_CGO_TARGETS:-} " == *" $t "* ]] && cgo=1
		cc_var=CC_${os}_${arch}
		cc=${!cc_var:-}
		rm -rf "$dir"
		mkdir -p "$dir"
		echo "release.sh: building $t (cgo $cgo) into $dir" >&2
		# csv and csv-kms, same flags: csv runs the csv-kms beside it.
		for exe in csv csv-kms; do
			env GOOS="$os" GOARCH="$arch" CGO_ENABLED=$cgo ${cc:+CC="$cc"} GOFLAGS=-buildvcs=false \
				go build -trimpath -ldflags "$ldflags" -o "$dir/$exe$sfx" "./cmd/$exe"
		done
		cp LICENSE README.md CHANGELOG.md SECURITY.md "$dir/"
		third_party "$dir/csv$sfx" "$dir/csv-kms$sfx" >"$dir/THIRD_PARTY_LICENSES"
		chmod 0644 "$dir"/*.md "$dir/LICENSE" "$dir/THIRD_PARTY_LICENSES"
		chmod 0755 "$dir/csv$sfx" "$dir/csv-kms$sfx"
	done
}

# third_party prints the licence files (LICENSE*, LICENCE*, COPYING*,
# NOTICE*) of every module linked into the binaries given (csv, csv-kms),
# once each, as their licences ask of a binary distribution (MIT, BSD;
# MPL-2.0 also asks to say where the source is: every module's is at its
# module path and version).
third_party() {
	local mods='' b m dir f found
	for b in "$@"; do
		m=$(go version -m "$b" | awk '$1 == "dep" {print $2}')
		[[ -n $m ]] || die "go version -m $b lists no modules"
		mods+=$m$'\n'
	done
	mods=$(LC_ALL=C sort -u <<<"$mods")
	echo "# Third-party licences"
	echo
	echo "csv and csv-kms link these Go modules; each one's source is at its module path (go mod download MODULE@VERSION)."
	# shellcheck disable=SC2086 # one argument per module
	go list -m -f '{{.Path}}@{{.Version}} {{.Dir}}' $mods | while read -r m dir; do
		[[ -d $dir ]] || die "module $m is not in the module cache"
		echo
		echo "## $m"
		found=0
		for f in "$dir"/LICENSE* "$dir"/LICENCE* "$dir"/COPYING* "$dir"/NOTICE* "$dir"/License*; do
			[[ -f $f ]] || continue
			echo
			echo "### ${f##*/}"
			echo
			cat "$f"
			found=1
		done
		((found)) || die "module $m has no licence file in $dir"
	done
}

# pki_snapshot writes a throwaway root and code-signing leaf with openssl.
pki_snapshot() {
	local d=$out/snapshot-pki
	rm -rf "$d"
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
		-subj "/CN=csv snapshot root (throwaway)" -keyout "$d/root.key" -out "$d/root.pem" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj "/CN=csv snapshot release signing" -keyout "$d/release.key" -out "$d/release.csr" 2>/dev/null
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n' >"$d/ext.cnf"
	openssl x509 -req -in "$d/release.csr" -CA "$d/root.pem" -CAkey "$d/root.key" -CAcreateserial \
		-days 30 -extfile "$d/ext.cnf" -out "$d/release.pem" 2>/dev/null
	# The chain up to its self-signed root: csv sign refuses a chain that
	# no verifier could build.
	cat "$d/release.pem" "$d/root.pem" >"$d/chain.pem"
	CSV_RELEASE_KEY=$d/release.key
	CSV_RELEASE_CERT=$d/chain.pem
	CSV_RELEASE_ROOT=$d/root.pem
	echo "release.sh: snapshot: signing with a throwaway CA in $d (not a release)" >&2
}

package() {
	local t dir name tmp csv host exe sfx b f sbom=${CSV_SBOM:-cyclonedx}
	if [[ -z ${CSV_RELEASE_KEY:-} ]]; then
		((snapshot)) || die "CSV_RELEASE_KEY and CSV_RELEASE_CERT are required: a release is signed"
		pki_snapshot
	fi
	[[ -n ${CSV_RELEASE_CERT:-} ]] || die "CSV_RELEASE_CERT is required with CSV_RELEASE_KEY"
	[[ -n ${CSV_RELEASE_ROOT:-} ]] || die "CSV_RELEASE_ROOT is required: the manifests are verified against it before they are published"
	case $sbom in
	cyclonedx) ;;
	none) ((snapshot)) || die "CSV_SBOM=none: a release has an SBOM" ;;
	*) die "CSV_SBOM=$sbom: want cyclonedx or none" ;;
	esac
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	# The csv that signs: this build's own, where it runs here, with its
	# csv-kms beside it (csv hands a KMS CSV_RELEASE_KEY to the csv-kms in
	# its own directory). Copies: signing changes the staged binaries.
	host=$stage/$(name_of "$(go env GOHOSTOS)/$(go env GOHOSTARCH)")
	csv=$tmp/csv
	if [[ -x $host/csv && -x $host/csv-kms ]]; then
		cp "$host/csv" "$host/csv-kms" "$tmp/"
		chmod 0755 "$tmp/csv" "$tmp/csv-kms"
	else
		for b in csv csv-kms; do
			GOFLAGS=-buildvcs=false go build -trimpath -ldflags "$ldflags" -o "$tmp/$b" "./cmd/$b"
		done
	fi
	local ts=()
	[[ -n ${CSV_RELEASE_TIMESTAMP_URL:-} ]] && ts=(--timestamp-url "$CSV_RELEASE_TIMESTAMP_URL")
	find "$out" -maxdepth 1 -type f \( -name 'csv_*' -o -name 'SHA256SUMS*' \) -delete
	for t in $targets; do
		name=$(name_of "$t")
		dir=$stage/$name
		sfx=""
		[[ $t == windows/* ]] && sfx=.exe
		for exe in "$dir/csv$sfx" "$dir/csv-kms$sfx"; do
			[[ -f $exe ]] || die "no $exe: run the build step for $t first"
			chmod 0755 "$exe" # an artifact download loses the mode
		done
		if [[ $t != darwin/* ]]; then
			# A hash policy of exactly this build (csv and csv-kms): the
			# manifest states that every binary in it passed.
			"$csv" policy new --level hash --name "csv-release-$VERSION-${t/\//-}" --output "$tmp/$name.yaml" "$dir" 2>/dev/null
			"$csv" sign --quiet --key "$CSV_RELEASE_KEY" --cert "$CSV_RELEASE_CERT" "${ts[@]}" \
				--policy "$tmp/$name.yaml" --manifest "$out/$name.manifest.sigstore.json" "$dir"
			"$csv" verify-manifest --manifest "$out/$name.manifest.sigstore.json" --certs "$CSV_RELEASE_ROOT" --extra "$dir" >/dev/null ||
				die "the manifest of $name does not verify"
		fi
		if [[ $sbom == cyclonedx ]]; then
			# bin mode reads the module list Go recorded in the binary: the
			# modules linked into it, at the versions and sums built. One
			# SBOM a binary: csv-kms links the cloud SDKs csv does not.
			for b in csv csv-kms; do
				f=$out/$name.sbom.cdx.json
				[[ $b == csv ]] || f=$out/$name.$b.sbom.cdx.json
				GOFLAGS='' go run "$CYCLONEDX" bin -json -licenses=false -version "$VERSION" \
					-output "$f" "$dir/$b$sfx" ||
					die "cyclonedx-gomod failed for $name/$b$sfx (offline without it in the module cache? CSV_SBOM=none for a snapshot)"
			done
		fi
		# Reproducible archives: the commit's time, sorted names, no owner.
		find "$dir" -exec touch -h -d "$date" {} +
		if [[ $t == windows/* ]]; then
			(cd "$stage" && find "$name" -print | LC_ALL=C sort | TZ=UTC zip -q -X -D "$out/$name.zip" -@)
		else
			tar -C "$stage" --sort=name --mtime="$date" --owner=0 --group=0 --numeric-owner \
				--format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
				-cf - "$name" | gzip -n -9 >"$out/$name.tar.gz"
		fi
	done
	(cd "$out" && find . -maxdepth 1 -type f -name 'csv_*' -printf '%f\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)
	# The checksums' Sigstore bundle, by csv sign --bundle of a directory
	# holding only them.
	mkdir "$tmp/sums"
	cp "$out/SHA256SUMS" "$tmp/sums/"
	"$csv" sign --quiet --key "$CSV_RELEASE_KEY" --cert "$CSV_RELEASE_CERT" "${ts[@]}" --bundle "$tmp/sums"
	[[ -s $tmp/sums/SHA256SUMS.sigstore.json ]] || die "csv sign wrote no bundle for SHA256SUMS"
	cp "$tmp/sums/SHA256SUMS.sigstore.json" "$out/"
	echo "release.sh: $VERSION in $out:" >&2
	(cd "$out" && ls -1 csv_* SHA256SUMS*) >&2
}

case $step in
build) build ;;
package) package ;;
all) build && package ;;
esac
