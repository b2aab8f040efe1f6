#!/usr/bin/env bash
# action.sh: the shell logic of csv's GitHub Action (action.yml), kept here so
# that scripts/action_test.go runs it. Inputs come in the environment, never
# in the script's text (a workflow's input cannot inject a command).
#
#   action.sh install   installs csv and csv-kms (csv with the cloud KMS
#                       providers, which csv runs from its own directory for
#                       a KMS --key) into CSV_INSTALL_DIR (default
#                       $RUNNER_TEMP/csv-bin) and adds it to $GITHUB_PATH:
#                       CSV_VERSION vX.Y.Z downloads that release's archive
#                       for this runner and SHA256SUMS from CSV_DOWNLOAD_URL
#                       (default the GitHub release), and refuses an archive
#                       whose SHA-256 is not the one SHA256SUMS lists, an
#                       archive without both binaries, and a binary that
#                       does not report the version asked for; CSV_VERSION
#                       empty or "source" builds both from the action's own
#                       checkout with go build.
#   action.sh validate  runs csv validate with CSV_POLICY (policy files, one
#                       a line), CSV_PATHS (one a line, default .),
#                       CSV_MODE, CSV_FORMAT (default sarif), CSV_OUTPUT,
#                       CSV_SHARD (i/n) and CSV_ARGS (more arguments, split
#                       on spaces); it always exits 0 and writes exit-code,
#                       report and category to $GITHUB_OUTPUT, so that the
#                       report is uploaded before the job fails.
#   action.sh finish    exits with CSV_EXIT_CODE, explaining it.
set -euo pipefail

die() {
	echo "::error title=csv action::$*" >&2
	echo "csv action: $*" >&2
	exit 2
}
output() {
	if [[ -n ${GITHUB_OUTPUT:-} ]]; then
		printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"
	fi
	echo "csv action: $1=$2" >&2
}
# trim drops the blanks (and a CR) around a line of a multi-line input.
trim() {
	local s=${1%$'\r'}
	s=${s#"${s%%[![:space:]]*}"}
	s=${s%"${s##*[![:space:]]}"}
	printf '%s' "$s"
}
sha256() {
	if command -v sha256sum >/dev/null; then
		sha256sum "$1" | cut -d' ' -f1
	else
		shasum -a 256 "$1" | cut -d' ' -f1
	fi
}

install() {
	local version=${CSV_VERSION:-} dir=${CSV_INSTALL_DIR:-${RUNNER_TEMP:-/tmp}/csv-bin}
	local os arch sfx="" exe b
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [[ -z $version || $version == source ]]; then
		local src
		src=$(cd "$(dirname "$0")/.." && pwd)
		[[ -f $src/go.mod ]] || die "no source to build: $src has no go.mod"
		command -v go >/dev/null || die "building csv from source needs Go (actions/setup-go), or set version to a release"
		[[ $(uname -s) == MINGW* || $(uname -s) == MSYS* ]] && sfx=.exe
		echo "csv action: building csv and csv-kms from $src" >&2
		for b in csv csv-kms; do
			(cd "$src" && GOFLAGS=-buildvcs=false go build -trimpath -o "$dir/$b$sfx" "./cmd/$b") || die "go build of $b failed"
		done
	else
		[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || die "version \"$version\": want vMAJOR.MINOR.PATCH, or source"
		case $(uname -s) in
		Linux) os=linux ;;
		Darwin) os=darwin ;;
		MINGW* | MSYS* | CYGWIN*) os=windows sfx=.exe ;;
		*) die "no csv release for $(uname -s)" ;;
		esac
		case $(uname -m) in
		x86_64 | amd64) arch=amd64 ;;
		aarch64 | arm64) arch=arm64 ;;
		*) die "no csv release for $(uname -m)" ;;
		esac
		local name=csv_${version#v}_${os}_${arch} ext=tar.gz
		[[ $os == windows ]] && ext=zip
		local base=${CSV_DOWNLOAD_URL:-https://github.com/codesignval/csv/releases/download/$version}
		local tmp
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' RETURN
		echo "csv action: downloading $name.$ext from $base" >&2
		curl -fsSL --retry 3 --proto '=https,file,http' -o "$tmp/SHA256SUMS" "$base/SHA256SUMS" || die "cannot download $base/SHA256SUMS"
		curl -fsSL --retry 3 --proto '=https,file,http' -o "$tmp/$name.$ext" "$base/$name.$ext" || die "cannot download $base/$name.$ext"
		# The one line naming the archive, exactly; none, or two, is a refusal.
		local want got
		want=$(awk -v f="$name.$ext" '($2 == f || $2 == "*" f) {print $1; n++} END {if (n != 1) exit 1}' "$tmp/SHA256SUMS") ||
			die "SHA256SUMS of $version does not list $name.$ext exactly once"
		[[ $want =~ ^[0-9a-f]{64}$ ]] || die "SHA256SUMS of $version: \"$want\" is not a SHA-256 for $name.$ext"
		got=$(sha256 "$tmp/$name.$ext")
		[[ $got == "$want" ]] || die "$name.$ext has SHA-256 $got, but SHA256SUMS lists $want: refusing it"
		mkdir "$tmp/x"
		if [[ $ext == zip ]]; then
			unzip -q "$tmp/$name.$ext" -d "$tmp/x" || die "cannot unpack $name.$ext"
		else
			tar -xzf "$tmp/$name.$ext" -C "$tmp/x" || die "cannot unpack $name.$ext"
		fi
		# Both binaries, or neither: csv runs the csv-kms beside it.
		for b in csv csv-kms; do
			exe=$tmp/x/$name/$b$sfx
			[[ -f $exe && ! -L $exe ]] || die "$name.$ext holds no $name/$b$sfx"
		done
		local reported
		for b in csv csv-kms; do
			exe=$tmp/x/$name/$b$sfx
			chmod 0755 "$exe"
			reported=$("$exe" version --format json | awk -F'"' '$2 == "version" {print $4}') || true
			[[ $reported == "$version" ]] || die "the $b in $name.$ext reports version \"$reported\", not $version"
		done
		for b in csv csv-kms; do
			cp "$tmp/x/$name/$b$sfx" "$dir/$b$sfx"
			chmod 0755 "$dir/$b$sfx"
		done
	fi
	exe=csv$sfx
	if [[ -n ${GITHUB_PATH:-} ]]; then
		echo "$dir" >>"$GITHUB_PATH"
	fi
	output path "$dir/$exe"
	"$dir/$exe" version >&2
}

validate() {
	local csv=${CSV_BIN:-csv} format=${CSV_FORMAT:-sarif} out=${CSV_OUTPUT:-} shard=${CSV_SHARD:-}
	local args=(validate) line policies=0 paths=0 code=0
	while IFS= read -r line; do
		line=$(trim "$line")
		[[ -z $line ]] && continue
		args+=(--policy "$line")
		policies=$((policies + 1))
	done <<<"${CSV_POLICY:-}"
	((policies)) || die "the policy input is required: one policy file a line"
	case $format in
	text | json | sarif | junit) ;;
	*) die "format \"$format\": want text, json, sarif or junit" ;;
	esac
	if [[ -z $out ]]; then
		case $format in
		text) out="csv-report.txt" ;;
		json) out="csv-report.json" ;;
		sarif) out="csv-report.sarif" ;;
		junit) out="csv-report.xml" ;;
		esac
		[[ -n $shard ]] && out=${out%.*}-${shard/\//-of-}.${out##*.}
	fi
	args+=(--format "$format" --output "$out")
	if [[ -n ${CSV_MODE:-} ]]; then
		args+=(--mode "$CSV_MODE")
	fi
	local category=${CSV_CATEGORY:-csv}
	if [[ -n $shard ]]; then
		[[ $shard =~ ^[0-9]+/[0-9]+$ ]] || die "shard \"$shard\": want i/n, as 1/4"
		args+=(--shard "$shard")
		# Code scanning keeps one analysis per category: each shard's
		# upload needs its own, or it replaces the others'.
		category=$category-shard-${shard/\//-of-}
	fi
	if [[ -n ${CSV_ARGS:-} ]]; then
		local extra
		read -r -a extra <<<"$CSV_ARGS"
		args+=("${extra[@]}")
	fi
	while IFS= read -r line; do
		line=$(trim "$line")
		[[ -z $line ]] && continue
		args+=("$line")
		paths=$((paths + 1))
	done <<<"${CSV_PATHS:-.}"
	((paths)) || args+=(.)
	echo "csv action: csv ${args[*]}" >&2
	"$csv" "${args[@]}" || code=$?
	output exit-code "$code"
	if [[ -f $out ]]; then
		output report "$out"
	else
		output report ""
	fi
	output category "$category"
	if [[ $format == text && -f $out ]]; then
		cat "$out"
	fi
}

finish() {
	local code=${CSV_EXIT_CODE:-}
	case $code in
	0) echo "csv action: nothing blocked" >&2 ;;
	1) echo "::error title=csv::csv validate blocked files (exit status 1): see the report and code scanning" >&2 ;;
	"") die "no exit code from the validate step" ;;
	*[!0-9]*) die "exit code \"$code\" is not a number" ;;
	*) echo "::error title=csv::csv validate could not decide (exit status $code): a usage, policy or configuration error" >&2 ;;
	esac
	exit "$code"
}

case ${1:-} in
install) install ;;
validate) validate ;;
finish) finish ;;
*) die "usage: action.sh install|validate|finish" ;;
esac
