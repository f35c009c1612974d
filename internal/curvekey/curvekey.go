// Package curvekey reads the CURVE key files that `hose keygen` writes, for
// the commands (hose, hosebench) that take keys as flags.
package curvekey

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	zmq "github.com/pebbe/zmq4"
)

// z85 is the Z85 alphabet (ZeroMQ RFC 32).
const z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

// isKey reports whether s is a Z85-encoded 32-byte key. zmq.Z85decode
// checks only the length, so the alphabet is checked here.
func isKey(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(z85, s[i]) < 0 {
			return false
		}
	}
	return len(zmq.Z85decode(s)) == 32
}

// Read returns a Z85 key given literally or as the path of a file that
// holds one. A file that exists wins over a literal reading, so a
// 40-character path is never taken for a key.
func Read(s string) (string, error) {
	if _, err := os.Stat(s); err != nil && isKey(s) {
		return s, nil
	}
	b, err := os.ReadFile(s)
	if err != nil {
		return "", fmt.Errorf("CURVE key %s: %w", s, err)
	}
	k := strings.TrimSpace(string(b))
	if !isKey(k) {
		return "", fmt.Errorf("%s holds no Z85 CURVE key", s)
	}
	return k, nil
}

// ReadList reads public keys from a directory of *.pub files or from a
// file with one key per line (# comments allowed). An empty list is an
// error: it would let everyone in.
func ReadList(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	var files []string
	if st, err := os.Stat(path); err != nil {
		return nil, err
	} else if st.IsDir() {
		if files, err = filepath.Glob(filepath.Join(path, "*.pub")); err != nil {
			return nil, err
		}
	} else {
		files = []string{path}
	}
	var keys []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, err := Read(line)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no public keys (an empty allow-list would let everyone in)", path)
	}
	return keys, nil
}

// Write creates path (it must not exist) holding key and a newline, with
// the given mode: 0600 for a secret key, 0644 for a public one.
func Write(path, key string, mode os.FileMode) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(fh, key)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}

// Peer resolves a CURVE client's two flags, the broker's public key (Z85
// or a file) and this peer's secret key file, into the three keys its
// Config takes. No server key: no CURVE, all empty. No secret key: empty
// pair, so the library makes a fresh one.
func Peer(serverKey, keyFile string) (server, pub, sec string, err error) {
	if serverKey == "" {
		if keyFile != "" {
			return "", "", "", fmt.Errorf("-curve-key needs -curve-server-key")
		}
		return "", "", "", nil
	}
	if server, err = Read(serverKey); err != nil {
		return "", "", "", err
	}
	if keyFile != "" {
		if sec, err = Read(keyFile); err != nil {
			return "", "", "", err
		}
		if pub, err = zmq.AuthCurvePublic(sec); err != nil {
			return "", "", "", err
		}
	}
	return server, pub, sec, nil
}

// PeerFlags are a CURVE client's two flags, -curve-server-key and
// -curve-key, as hose worker, exec and ping, hosebench and hosetop take
// them.
type PeerFlags struct {
	ServerKey string // the broker's public key, Z85 or a file
	Key       string // this peer's secret key file
}

// Register adds the two flags to fs.
func (f *PeerFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.ServerKey, "curve-server-key", "", "the broker's CURVE public `KEY` (Z85, or a .pub file from hose keygen): encrypt and authenticate the broker")
	fs.StringVar(&f.Key, "curve-key", "", "this peer's secret key `FILE` (from hose keygen) when the broker has an allow-list (default: a fresh key pair)")
}

// Set reports whether either flag was given.
func (f *PeerFlags) Set() bool { return f.ServerKey != "" || f.Key != "" }

// Keys resolves the flags (see Peer).
func (f *PeerFlags) Keys() (server, pub, sec string, err error) { return Peer(f.ServerKey, f.Key) }
