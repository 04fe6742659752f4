// Package e2e holds mcpgate's end-to-end tests: the real mcpgate binary, built once per test run,
// in front of real upstreams and driven by real clients. Node-based tests use
// @modelcontextprotocol/server-everything as the upstream, the TypeScript SDK client, and the
// @modelcontextprotocol/conformance server scenarios (see internal/testutil/nodeenv and node/).
//
// Run them with `go test ./test/e2e/...` (they need no -race: the gateway runs as its own process)
// or through ./scripts/test, which installs node, npm and the npm packages first.
package e2e
