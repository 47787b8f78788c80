package spiretest

import "syscall"

// sysProcAttr makes the kernel SIGKILL a child when the test binary dies
// (more exactly, when the OS thread that started it exits; Go does not end
// threads except those left locked by runtime.LockOSThread).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
