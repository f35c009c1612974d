// Package handlers holds hose's built-in job handlers, used by `hose worker`,
// `hose cluster`, hosebench's embedded cluster and the tests: echo, a
// CPU-bound sha256 loop, sleep and fail. A job spec names one: "echo",
// "sha256:ROUNDS", "sleep:DURATION", "fail" (or "fail:MESSAGE").
package handlers

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hose-project/hose/worker"
)

// Defaults used when a spec gives no argument.
const (
	DefaultRounds = 1000
	DefaultSleep  = 10 * time.Millisecond
)

// Names lists the built-in handlers.
var Names = []string{"echo", "sha256", "sleep", "fail"}

// Echo returns the payload unchanged.
func Echo() worker.Handler {
	return worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) {
		return j.Payload, nil
	})
}

// SHA256 hashes the payload rounds times (each round hashes the previous
// digest) and returns the final 32-byte digest: a CPU-bound job of a
// predictable cost, like a token server's signing.
func SHA256(rounds int) worker.Handler {
	if rounds < 1 {
		rounds = 1
	}
	return worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) {
		sum := sha256.Sum256(j.Payload)
		for i := 1; i < rounds; i++ {
			sum = sha256.Sum256(sum[:])
		}
		return sum[:], nil
	})
}

// Sleep waits d (or until the job's deadline) and returns the payload.
func Sleep(d time.Duration) worker.Handler {
	return worker.HandlerFunc(func(ctx context.Context, j *worker.Job) ([]byte, error) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return j.Payload, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
}

// Fail always answers with a worker error carrying msg.
func Fail(msg string) worker.Handler {
	if msg == "" {
		msg = "fail handler: this job always fails"
	}
	return worker.HandlerFunc(func(context.Context, *worker.Job) ([]byte, error) {
		return nil, errors.New(msg)
	})
}

// Spec is a parsed job spec.
type Spec struct {
	Name   string
	Rounds int
	Sleep  time.Duration
	Msg    string
}

func (s Spec) String() string {
	switch s.Name {
	case "sha256":
		return fmt.Sprintf("sha256:%d", s.Rounds)
	case "sleep":
		return "sleep:" + s.Sleep.String()
	}
	return s.Name
}

// Handler returns the handler the spec names.
func (s Spec) Handler() worker.Handler {
	switch s.Name {
	case "sha256":
		return SHA256(s.Rounds)
	case "sleep":
		return Sleep(s.Sleep)
	case "fail":
		return Fail(s.Msg)
	}
	return Echo()
}

// Direct runs the job as a plain function call, without a broker, for
// comparisons (hosebench -compare-direct).
func (s Spec) Direct(payload []byte) ([]byte, error) {
	return s.Handler().Handle(context.Background(), &worker.Job{Payload: payload, Deadline: time.Now().Add(time.Hour)})
}

// Parse parses "echo", "sha256[:ROUNDS]", "sleep[:DURATION]" or
// "fail[:MESSAGE]".
func Parse(spec string) (Spec, error) {
	name, arg, hasArg := strings.Cut(spec, ":")
	s := Spec{Name: name, Rounds: DefaultRounds, Sleep: DefaultSleep}
	switch name {
	case "echo":
		if hasArg {
			return Spec{}, fmt.Errorf("handlers: echo takes no argument (got %q)", spec)
		}
	case "sha256":
		if hasArg {
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 {
				return Spec{}, fmt.Errorf("handlers: sha256 rounds %q: want a positive integer", arg)
			}
			s.Rounds = n
		}
	case "sleep":
		if hasArg {
			d, err := time.ParseDuration(arg)
			if err != nil || d < 0 {
				return Spec{}, fmt.Errorf("handlers: sleep duration %q: want a duration such as 20ms", arg)
			}
			s.Sleep = d
		}
	case "fail":
		s.Msg = arg
	default:
		return Spec{}, fmt.Errorf("handlers: unknown job %q (want echo, sha256[:ROUNDS], sleep[:DURATION] or fail)", spec)
	}
	return s, nil
}
