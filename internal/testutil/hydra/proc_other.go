//go:build !linux

package hydra

import "os/exec"

func setProcAttr(*exec.Cmd) {}
