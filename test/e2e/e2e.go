// Package e2e holds mcpgate's end-to-end tests: the real mcpgate binary, built once per test run
// by TestMain, in front of real upstreams and driven by real clients.
//
// The Node side lives in node/ (see internal/testutil/nodeenv, which installs it with npm ci):
// @modelcontextprotocol/server-everything and node/conformance-server.mjs as upstreams, the
// TypeScript SDK client (node/ts-client.mjs), and the @modelcontextprotocol/conformance server
// scenarios, run against each upstream directly and through the gateway and compared.
//
// Run them with `go test ./test/e2e/...` (no -race: the gateway runs as its own process), or with
// ./scripts/test, which first installs node, npm, the npm packages and the other tools.
package e2e
