package loadgen

import (
	"context"
	"errors"

	"github.com/hose-project/hose/client"
)

// Kind classifies the outcome of one request.
type Kind uint8

// Outcomes. Every kind but OK and Cancelled is an error in the report.
const (
	KindOK Kind = iota
	KindTimeout
	KindNoWorker
	KindBusy
	KindWorkerLost
	KindBrokerGone
	KindWorkerError
	KindTooLarge
	KindShuttingDown
	KindOther
	// KindCancelled: the run was interrupted while the request was in
	// flight (context cancelled, or the client closed). Not an error.
	KindCancelled
	numKinds
)

// ErrorKinds lists the error kinds in report order.
var ErrorKinds = []Kind{
	KindTimeout, KindNoWorker, KindBusy, KindWorkerLost, KindBrokerGone,
	KindWorkerError, KindTooLarge, KindShuttingDown, KindOther,
}

var kindNames = [numKinds]string{
	KindOK:           "ok",
	KindTimeout:      "timeout",
	KindNoWorker:     "no_worker",
	KindBusy:         "busy",
	KindWorkerLost:   "worker_lost",
	KindBrokerGone:   "broker_gone",
	KindWorkerError:  "worker_error",
	KindTooLarge:     "too_large",
	KindShuttingDown: "shutting_down",
	KindOther:        "other",
	KindCancelled:    "cancelled",
}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "other"
}

// Classify maps an Execute error to its kind.
func Classify(err error) Kind {
	switch {
	case err == nil:
		return KindOK
	case errors.Is(err, client.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.Is(err, context.Canceled), errors.Is(err, client.ErrClosed):
		return KindCancelled
	case errors.Is(err, client.ErrNoWorker):
		return KindNoWorker
	case errors.Is(err, client.ErrBusy):
		return KindBusy
	case errors.Is(err, client.ErrWorkerLost):
		return KindWorkerLost
	case errors.Is(err, client.ErrBrokerGone):
		return KindBrokerGone
	case errors.Is(err, client.ErrWorker):
		return KindWorkerError
	case errors.Is(err, client.ErrTooLarge):
		return KindTooLarge
	case errors.Is(err, client.ErrShuttingDown):
		return KindShuttingDown
	}
	return KindOther
}
