package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/hose-project/hose/protocol"
)

// Errors returned by Execute. Test them with errors.Is.
var (
	// ErrTimeout: the call's deadline passed before an answer came. It also
	// matches context.DeadlineExceeded.
	ErrTimeout = &timeoutError{}
	// ErrNoWorker: no worker served the job's service within the broker's
	// bounded wait.
	ErrNoWorker = errors.New("hose: no worker for this service")
	// ErrBusy: the service's queue in the broker is full.
	ErrBusy = errors.New("hose: broker busy, queue full")
	// ErrWorkerLost: the worker running the job died or went silent.
	ErrWorkerLost = errors.New("hose: worker lost mid-job")
	// ErrBrokerGone: no broker could be reached, or the broker went away
	// with the job; the job may or may not have run.
	ErrBrokerGone = errors.New("hose: broker unreachable")
	// ErrTooLarge: the payload exceeds the client's or the broker's limit.
	ErrTooLarge = errors.New("hose: payload too large")
	// ErrBadRequest: the broker could not decode the request.
	ErrBadRequest = errors.New("hose: malformed request")
	// ErrUnknownService: the broker does not route this service.
	ErrUnknownService = errors.New("hose: unknown service")
	// ErrShuttingDown: the broker is shutting down.
	ErrShuttingDown = errors.New("hose: broker shutting down")
	// ErrUnsupportedVersion: the broker speaks another protocol version.
	ErrUnsupportedVersion = errors.New("hose: unsupported protocol version")
	// ErrWorker matches every *WorkerError.
	ErrWorker = errors.New("hose: worker error")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("hose: client closed")
)

type timeoutError struct{}

func (*timeoutError) Error() string        { return "hose: deadline exceeded" }
func (*timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }
func (*timeoutError) Timeout() bool        { return true }

// WorkerError is a job that the worker answered with an error: its handler
// returned one, panicked, or exceeded the worker's time limit. Message is
// the worker's text (a Python worker sends its traceback).
type WorkerError struct {
	Message string
}

func (e *WorkerError) Error() string { return "hose: worker error: " + e.Message }

// Is makes errors.Is(err, ErrWorker) true for every WorkerError.
func (e *WorkerError) Is(target error) bool { return target == ErrWorker }

// statusError maps a reply status to the error Execute returns.
func statusError(st protocol.Status, msg []byte) error {
	switch st {
	case protocol.StatusOK:
		return nil
	case protocol.StatusWorkerError:
		return &WorkerError{Message: string(msg)}
	case protocol.StatusDeadline:
		return ErrTimeout
	case protocol.StatusNoWorker:
		return ErrNoWorker
	case protocol.StatusBusy:
		return ErrBusy
	case protocol.StatusWorkerLost:
		return ErrWorkerLost
	case protocol.StatusTooLarge:
		return ErrTooLarge
	case protocol.StatusMalformed:
		return ErrBadRequest
	case protocol.StatusUnknownService:
		return ErrUnknownService
	case protocol.StatusShuttingDown:
		return ErrShuttingDown
	case protocol.StatusUnsupportedVersion:
		return ErrUnsupportedVersion
	}
	return fmt.Errorf("%w: unknown status %d", ErrBadRequest, byte(st))
}
