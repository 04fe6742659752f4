#!/usr/bin/env bash
# build-hydra.sh builds Ory Hydra (the OAuth authorization server used by the
# tests, see internal/testutil/hydra) once into a cache directory and prints
# the binary's path on stdout. Everything else goes to stderr.
#
#   test/tools/build-hydra.sh            # build if needed, print the path
#   MCPGATE_TOOLS_DIR=/tmp/t test/tools/build-hydra.sh
#
# The binary is built with -tags sqlite (cgo, mattn/go-sqlite3) so Hydra can
# run with DSN=memory and needs no PostgreSQL. It is rebuilt only when the
# inputs change: test/tools/go.mod, go.sum, this script and the Go version are
# hashed into a stamp file next to the binary. A cold build takes about six
# minutes on two cores; an up-to-date check takes well under a second.
#
# Safe to run concurrently: a lock (flock) serialises builds into the same
# cache directory, and the binary is installed by an atomic rename.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_dir="${MCPGATE_TOOLS_DIR:-${HOME}/.cache/mcpgate-tools}"
bin="${out_dir}/hydra"
stamp="${bin}.stamp"
go_bin="${GO:-go}"

mkdir -p "${out_dir}"

want_stamp() {
	{
		cat "${here}/go.mod" "${here}/go.sum" "${here}/build-hydra.sh"
		"${go_bin}" version
		echo "tags=sqlite"
	} | sha256sum | cut -d' ' -f1
}

up_to_date() {
	[[ -x "${bin}" && -f "${stamp}" && "$(cat "${stamp}")" == "$(want_stamp)" ]]
}

if up_to_date; then
	echo "${bin}"
	exit 0
fi

exec 9>"${out_dir}/hydra.lock"
if command -v flock >/dev/null 2>&1; then
	flock 9
fi
# Another run may have finished the build while we waited for the lock.
if up_to_date; then
	echo "${bin}"
	exit 0
fi

echo "build-hydra: building Ory Hydra into ${bin} (cold: about 6 minutes on 2 cores)..." >&2
start=$(date +%s)
tmp="${bin}.tmp.$$"
trap 'rm -f "${tmp}"' EXIT
(
	cd "${here}"
	# GOFLAGS from the caller (e.g. -mod=vendor for the main module) must not
	# leak into this separate module's build.
	export CGO_ENABLED=1 GOFLAGS=-buildvcs=false GOWORK=off
	version="$("${go_bin}" list -m -f '{{.Version}}' github.com/ory/hydra/v2)"
	"${go_bin}" build -tags sqlite -trimpath \
		-ldflags "-X github.com/ory/hydra/v2/driver/config.Version=${version}" \
		-o "${tmp}" github.com/ory/hydra/v2
)
"${tmp}" version >/dev/null
mv -f "${tmp}" "${bin}"
want_stamp >"${stamp}"
echo "build-hydra: built in $(($(date +%s) - start)) s" >&2
echo "${bin}"
