//go:build !linux

package main

import "syscall"

// childProcAttr: outside Linux, workers keep the default attributes.
func childProcAttr() *syscall.SysProcAttr { return nil }
