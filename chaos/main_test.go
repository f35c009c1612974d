//go:build chaos

package chaos

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/protocol"
	"github.com/hose-project/hose/worker"

	"github.com/hose-project/hose/internal/testproc"
)

// The test binary plays three roles: the suite itself, a chaos worker and a
// client that never reads (HOSE_CHAOS_ROLE picks one), so that workers and
// bad clients are real processes that the suite can kill, stop or move into
// another network namespace.
const roleEnv = "HOSE_CHAOS_ROLE"

// bins holds the binaries TestMain builds: hose (the broker) and hosebench
// (the clients killed mid-request).
var bins struct {
	dir, hose, hosebench string
}

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "worker":
		os.Exit(workerMain(os.Args[1:]))
	case "noread":
		os.Exit(noReadMain(os.Args[1:]))
	}
	flag.Parse()
	dir, err := os.MkdirTemp("", "hose-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.dir = dir
	bins.hose = filepath.Join(dir, "hose")
	bins.hosebench = filepath.Join(dir, "hosebench")
	for bin, pkg := range map[string]string{bins.hose: "../cmd/hose", bins.hosebench: "../cmd/hosebench"} {
		build := exec.Command(testproc.GoTool(), "build", "-o", bin, pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	printTable(os.Stdout)
	if path := os.Getenv("HOSE_CHAOS_TABLE"); path != "" {
		if f, err := os.Create(path); err == nil {
			printTable(f)
			f.Close()
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// trackedMagic starts every payload the suite's tracked load sends; the
// chaos worker journals the id after it, so the suite can count jobs that
// ran twice. Payloads of other clients (hosebench processes, the client
// that never reads) are served but not journaled.
const trackedMagic = "CHAOS\x00"

// trackedID returns the id a tracked payload carries.
func trackedID(p []byte) (uint64, bool) {
	if len(p) < len(trackedMagic)+8 || string(p[:len(trackedMagic)]) != trackedMagic {
		return 0, false
	}
	return binary.BigEndian.Uint64(p[len(trackedMagic):]), true
}

// workerMain is a worker process: it journals each tracked job's id with
// one append (a single write(2), so a kill -9 cannot leave half a record)
// before running it, waits -sleep, and echoes the payload.
func workerMain(args []string) int {
	fs := flag.NewFlagSet("chaos-worker", flag.ContinueOnError)
	backends := fs.String("backend", "", "broker backends, comma-separated")
	journalDir := fs.String("journal", "", "directory of job journals")
	sleep := fs.Duration("sleep", 2*time.Millisecond, "time each job takes")
	concurrency := fs.Int("concurrency", 4, "jobs at once")
	maxAge := fs.Duration("max-age", 0, "retire after D")
	maxAgeDelta := fs.Duration("max-age-delta", 0, "random part of max-age")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	journal, err := os.OpenFile(filepath.Join(*journalDir, fmt.Sprintf("journal-%d", os.Getpid())),
		os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer journal.Close()
	h := worker.HandlerFunc(func(ctx context.Context, j *worker.Job) ([]byte, error) {
		if id, ok := trackedID(j.Payload); ok {
			var rec [8]byte
			binary.BigEndian.PutUint64(rec[:], id)
			if _, err := journal.Write(rec[:]); err != nil {
				return nil, err
			}
		}
		if *sleep > 0 {
			t := time.NewTimer(*sleep)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return j.Payload, nil
	})
	w, err := worker.New(worker.Config{
		Backends: strings.Split(*backends, ","), Concurrency: *concurrency, MaxAge: *maxAge, MaxAgeDelta: *maxAgeDelta,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("pid", os.Getpid()),
	}, h)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := w.Run(ctx); err != nil && !errors.Is(err, worker.ErrRetired) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// noReadMain is a client that sends requests and never reads a reply: its
// receive queue and then its TCP window fill, and the broker must go on
// serving everyone else. It runs until killed.
func noReadMain(args []string) int {
	fs := flag.NewFlagSet("chaos-noread", flag.ContinueOnError)
	frontend := fs.String("frontend", "", "broker frontend")
	total := fs.Int("requests", 20000, "requests to send")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	s, err := zmq.NewSocket(zmq.DEALER)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = s.SetRcvhwm(1)
	_ = s.SetRcvbuf(4096)
	_ = s.SetLinger(0)
	if err := s.Connect(*frontend); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	payload := make([]byte, 1000)
	hdr := protocol.Header(protocol.Client, protocol.CmdRequest)
	var body []byte
	for id := 1; id <= *total; {
		body = body[:0]
		for end := min(id+100, *total+1); id < end; id++ {
			body = protocol.AppendJob(body, &protocol.Job{ID: uint64(id), TimeoutMS: 5000, Payload: payload})
		}
		if _, err := s.SendMessage(hdr, body); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("sent", *total)
	for { // never read; wait to be killed
		time.Sleep(time.Hour)
	}
}
