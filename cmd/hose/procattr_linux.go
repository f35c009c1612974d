package main

import "syscall"

// childProcAttr puts a worker in its own process group, so a Ctrl-C at the
// terminal reaches only hose cluster, which stops the workers in order; and
// has the kernel send the worker SIGTERM if hose cluster dies.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
