package curvekey

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	zmq "github.com/pebbe/zmq4"
)

func TestRead(t *testing.T) {
	pub, sec, err := zmq.NewCurveKeypair()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "w.key")
	if err := os.WriteFile(keyFile, []byte(sec+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A path of exactly 40 characters is read as a file, not a key.
	long := filepath.Join(dir, strings.Repeat("k", 40-len(dir)-1))
	if len(long) != 40 {
		t.Skipf("temporary directory too long for a 40-character path: %s", dir)
	}
	if err := os.WriteFile(long, []byte(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{pub, pub, true},
		{keyFile, sec, true},
		{long, pub, true},
		{strings.Repeat(" ", 40), "", false},       // not Z85, not a file
		{filepath.Join(dir, "missing"), "", false}, // no such file
	} {
		got, err := Read(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Read(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	srv, p, s, err := Peer(pub, keyFile)
	if err != nil || srv != pub || s != sec || p == "" {
		t.Errorf("Peer: %q %q %q %v", srv, p, s, err)
	}
	if _, _, _, err := Peer("", keyFile); err == nil {
		t.Error("Peer with a key file and no server key: want an error")
	}
}
