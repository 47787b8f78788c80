//go:build !linux

package spiretest

import "syscall"

// sysProcAttr returns nil: only Linux can tie a child's life to its parent.
// Cleanups registered by Start still stop the processes.
func sysProcAttr() *syscall.SysProcAttr { return nil }
