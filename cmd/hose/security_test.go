package main

import (
	"strings"
	"testing"
)

// TestHWMFlag checks -hwm on the commands that run a broker: it is
// listed, and a negative mark is a usage error.
func TestHWMFlag(t *testing.T) {
	for _, cmd := range []string{"broker", "cluster"} {
		t.Run(cmd, func(t *testing.T) {
			if out, _, code := runInProcess(cmd, "-h"); code != exitOK || !strings.Contains(out, "-hwm") {
				t.Errorf("hose %s -h: exit %d, -hwm not listed:\n%s", cmd, code, out)
			}
			_, errs, code := runInProcess(cmd, "-hwm", "-1")
			if code != exitUsage || !strings.Contains(errs, "high-water mark -1") {
				t.Errorf("hose %s -hwm -1: exit %d, stderr %q; want a usage error", cmd, code, errs)
			}
		})
	}
}
