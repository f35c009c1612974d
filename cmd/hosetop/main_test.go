package main

import (
	"context"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"-h"}, exitOK, "hosetop -demo"},
		{[]string{"-nope"}, exitUsage, "flag provided but not defined"},
		{[]string{"extra"}, exitUsage, "unexpected argument"},
		{[]string{"-refresh", "0s"}, exitUsage, "-refresh"},
		{[]string{"-control", "nowhere"}, exitUsage, "control endpoint"},
		{[]string{"-demo", "-handler", "nosuch"}, exitError, "unknown job"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out strings.Builder
			if code := run(context.Background(), tc.args, &out); code != tc.code || !strings.Contains(out.String(), tc.out) {
				t.Fatalf("exit %d, want %d; output:\n%s", code, tc.code, out.String())
			}
		})
	}
}
