package hydra

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill Hydra when the test binary dies (a
// panic, a -timeout), so no Hydra outlives its test.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
