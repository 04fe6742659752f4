package otelcol

import "github.com/mcpgate/mcpgate/internal/testutil/toolbin"

// Environment variables that steer where the collector binary comes from, as for Hydra
// (internal/testutil/hydra).
const (
	// EnvBinary names a prebuilt collector (test/tools/build-otelcol.sh's output).
	EnvBinary = "MCPGATE_TEST_OTELCOL"
	// EnvToolsDir overrides the cache directory of test/tools/build-otelcol.sh.
	EnvToolsDir = toolbin.EnvToolsDir
	// EnvBuild set to 0 makes tests skip instead of building the collector.
	EnvBuild = "MCPGATE_TEST_OTELCOL_BUILD"
)

var tool = &toolbin.Tool{Name: "otelcol", Title: "the OpenTelemetry Collector", EnvBinary: EnvBinary, EnvBuild: EnvBuild,
	Script: "test/tools/build-otelcol.sh", ColdBuild: "a few minutes"}

// errSkip marks a missing binary that the caller should skip on rather than fail.
var errSkip = toolbin.ErrSkip

// CachePath returns where test/tools/build-otelcol.sh puts the binary.
func CachePath() string { return tool.CachePath() }

// Binary finds the collector: MCPGATE_TEST_OTELCOL, else the cached build (toolbin.Tool.Binary).
// Under CI=true a missing binary is an error (scripts/test builds it first); otherwise the build
// script runs, or with MCPGATE_TEST_OTELCOL_BUILD=0 the caller skips (an error wrapping errSkip).
func Binary(logf func(format string, args ...any)) (string, error) { return tool.Binary(logf) }
