#!/usr/bin/env bash
# build-otelcol.sh builds the tests' OpenTelemetry Collector (test/tools/otelcol: the core
# collector with the OTLP receiver and the file exporter, see internal/testutil/otelcol) once into a
# cache directory and prints the binary's path on stdout. Everything else goes to stderr.
#
#   test/tools/build-otelcol.sh            # build if needed, print the path
#   MCPGATE_TOOLS_DIR=/tmp/t test/tools/build-otelcol.sh
#
# It is rebuilt only when the inputs change: test/tools/otelcol's go.mod, go.sum and main.go, this
# script and the Go version are hashed into a stamp file next to the binary. Safe to run
# concurrently and beside build-hydra.sh: a lock (flock) of its own serialises builds into the
# same cache directory, and the binary is installed by an atomic rename.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${here}/otelcol"
out_dir="${MCPGATE_TOOLS_DIR:-${HOME}/.cache/mcpgate-tools}"
bin="${out_dir}/otelcol"
stamp="${bin}.stamp"
go_bin="${GO:-go}"

mkdir -p "${out_dir}"

want_stamp() {
	{
		cat "${src}/go.mod" "${src}/go.sum" "${src}/main.go" "${here}/build-otelcol.sh"
		"${go_bin}" version
	} | sha256sum | cut -d' ' -f1
}

up_to_date() {
	[[ -x "${bin}" && -f "${stamp}" && "$(cat "${stamp}")" == "$(want_stamp)" ]]
}

if up_to_date; then
	echo "${bin}"
	exit 0
fi

exec 9>"${out_dir}/otelcol.lock"
if command -v flock >/dev/null 2>&1; then
	flock 9
fi
# Another run may have finished the build while we waited for the lock.
if up_to_date; then
	echo "${bin}"
	exit 0
fi

echo "build-otelcol: building the OpenTelemetry Collector into ${bin}..." >&2
start=$(date +%s)
tmp="${bin}.tmp.$$"
trap 'rm -f "${tmp}"' EXIT
(
	cd "${src}"
	# GOFLAGS from the caller must not leak into this separate module's build. No cgo: the
	# collector needs none, and a static binary starts anywhere.
	export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOWORK=off
	"${go_bin}" build -trimpath -o "${tmp}" .
)
"${tmp}" --version >/dev/null
mv -f "${tmp}" "${bin}"
want_stamp >"${stamp}"
echo "build-otelcol: built in $(($(date +%s) - start)) s" >&2
echo "${bin}"
