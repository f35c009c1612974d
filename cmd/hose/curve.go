package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/internal/curvekey"
)

const keygenUsage = `Usage: hose keygen NAME

Makes a CURVE key pair for a broker, a worker or a client: NAME.key holds
the secret key (mode 0600, keep it private) and NAME.pub the public key
(give it to peers). Keys are Z85 text, 40 characters.

  hose keygen broker          # broker.key: hose broker -curve-secret broker.key
  hose keygen worker1         # worker1.pub goes into the broker's -worker-keys
  hose worker -curve-server-key broker.pub -curve-key worker1.key ...

Exit codes:
  0  both files written
  1  a file could not be written (or already exists)
  2  usage error
`

type keygenCmd struct {
	log logFlags
}

func (c *keygenCmd) register(fs *flag.FlagSet) { c.log.register(fs) }

func (c *keygenCmd) run(_ context.Context, e *env, args []string) int {
	if len(args) != 1 || args[0] == "" {
		return usageError(e, "keygen", "want one NAME")
	}
	pub, sec, err := zmq.NewCurveKeypair()
	if err != nil {
		fmt.Fprintf(e.stderr, "hose keygen: %v\n", err)
		return exitError
	}
	name := args[0]
	for _, f := range []struct {
		path, key string
		mode      os.FileMode
	}{{name + ".key", sec, 0o600}, {name + ".pub", pub, 0o644}} {
		if err := curvekey.Write(f.path, f.key, f.mode); err != nil {
			fmt.Fprintf(e.stderr, "hose keygen: %v\n", err)
			return exitError
		}
	}
	fmt.Fprintf(e.stdout, "%s.key (secret) and %s.pub (public: %s)\n", name, name, pub)
	return exitOK
}

// brokerCurveFlags are a broker's CURVE flags (hose broker, hose cluster).
type brokerCurveFlags struct {
	secret     string
	clientKeys string
	workerKeys string
}

// register adds the flags; cluster says that the broker's own workers
// always get in (see ownWorkerKey).
func (f *brokerCurveFlags) register(fs *flag.FlagSet, cluster bool) {
	workers := "workers allowed with -curve-secret: a `PATH` like -client-keys (default: any)"
	if cluster {
		workers = "other workers allowed with -curve-secret besides the cluster's own: a `PATH` like -client-keys (default: none)"
	}
	fs.StringVar(&f.secret, "curve-secret", "", "the broker's CURVE secret key `FILE` (hose keygen): encrypt and authenticate both sockets")
	fs.StringVar(&f.clientKeys, "client-keys", "", "clients allowed with -curve-secret: a `PATH` to a directory of .pub files or a file of keys (default: any)")
	fs.StringVar(&f.workerKeys, "worker-keys", "", workers)
}

// apply reads the keys the flags name into cfg.
func (f *brokerCurveFlags) apply(cfg *broker.Config) error {
	if f.secret == "" {
		if f.clientKeys != "" || f.workerKeys != "" {
			return fmt.Errorf("-client-keys and -worker-keys need -curve-secret")
		}
		return nil
	}
	var err error
	if cfg.CurveSecretKey, err = curvekey.Read(f.secret); err != nil {
		return err
	}
	if cfg.ClientKeys, err = curvekey.ReadList(f.clientKeys); err != nil {
		return err
	}
	cfg.WorkerKeys, err = curvekey.ReadList(f.workerKeys)
	return err
}

// ownWorkerKey gives a CURVE broker's own worker processes (hose cluster's)
// a key pair made for this run: its public key joins cfg.WorkerKeys, and
// its secret key goes into a file of mode 0600 in a private temporary
// directory, so it never appears on a command line, which any user can
// read in /proc. It returns the flags that make a `hose worker` use it, and
// a function that removes the directory. Without CURVE it does nothing.
func ownWorkerKey(cfg *broker.Config) (args []string, cleanup func(), err error) {
	if cfg.CurveSecretKey == "" {
		return nil, func() {}, nil
	}
	serverPub, err := zmq.AuthCurvePublic(cfg.CurveSecretKey)
	if err != nil {
		return nil, nil, fmt.Errorf("CURVE server public key: %w", err)
	}
	pub, sec, err := zmq.NewCurveKeypair()
	if err != nil {
		return nil, nil, fmt.Errorf("CURVE worker key pair: %w", err)
	}
	// MkdirTemp makes the directory 0700.
	dir, err := os.MkdirTemp("", "hose_cluster-")
	if err != nil {
		return nil, nil, fmt.Errorf("CURVE worker key: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	path := filepath.Join(dir, "worker.key")
	if err := curvekey.Write(path, sec, 0o600); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("CURVE worker key: %w", err)
	}
	cfg.WorkerKeys = append(append([]string(nil), cfg.WorkerKeys...), pub)
	return []string{"-curve-server-key", serverPub, "-curve-key", path}, cleanup, nil
}
