package hydra

import "github.com/mcpgate/mcpgate/internal/testutil/toolbin"

// Environment variables that steer where the Hydra binary comes from.
const (
	// EnvBinary names a prebuilt Hydra binary (built with -tags sqlite).
	EnvBinary = "MCPGATE_TEST_HYDRA"
	// EnvToolsDir overrides the cache directory of test/tools/build-hydra.sh.
	EnvToolsDir = toolbin.EnvToolsDir
	// EnvBuild set to 0 makes tests skip instead of building Hydra.
	EnvBuild = "MCPGATE_TEST_HYDRA_BUILD"
)

var tool = &toolbin.Tool{Name: "hydra", Title: "Ory Hydra", EnvBinary: EnvBinary, EnvBuild: EnvBuild,
	Script: "test/tools/build-hydra.sh", ColdBuild: "about 6 minutes"}

// errSkip marks a missing binary that the caller should skip on rather than fail.
var errSkip = toolbin.ErrSkip

// CachePath returns where test/tools/build-hydra.sh puts the binary.
func CachePath() string { return tool.CachePath() }

// Binary finds the Hydra binary as the package documentation describes (toolbin.Tool.Binary).
// logf receives progress notes (a cold build takes minutes). A returned error wrapping errSkip
// means the binary is absent and building was turned off.
func Binary(logf func(format string, args ...any)) (string, error) { return tool.Binary(logf) }
