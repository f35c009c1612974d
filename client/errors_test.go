package client

import (
	"context"
	"errors"
	"testing"

	"github.com/hose-project/hose/protocol"
)

func TestStatusErrorsMatchSentinels(t *testing.T) {
	cases := []struct {
		st   protocol.Status
		want error
	}{
		{protocol.StatusMalformed, ErrBadRequest},
		{protocol.StatusUnknownService, ErrUnknownService},
		{protocol.StatusTooLarge, ErrTooLarge},
		{protocol.StatusBusy, ErrBusy},
		{protocol.StatusNoWorker, ErrNoWorker},
		{protocol.StatusWorkerError, ErrWorker},
		{protocol.StatusWorkerLost, ErrWorkerLost},
		{protocol.StatusDeadline, ErrTimeout},
		{protocol.StatusUnsupportedVersion, ErrUnsupportedVersion},
		{protocol.StatusShuttingDown, ErrShuttingDown},
		{protocol.Status(200), ErrBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.st.String(), func(t *testing.T) {
			if err := statusError(tc.st, []byte("msg")); !errors.Is(err, tc.want) {
				t.Fatalf("status %v: %v does not match %v", tc.st, err, tc.want)
			}
		})
	}
	if statusError(protocol.StatusOK, nil) != nil {
		t.Fatal("ok is an error")
	}
}

func TestWorkerErrorCarriesMessage(t *testing.T) {
	err := statusError(protocol.StatusWorkerError, []byte("Traceback: boom"))
	var we *WorkerError
	if !errors.As(err, &we) || we.Message != "Traceback: boom" {
		t.Fatalf("got %#v", err)
	}
	if errors.Is(err, ErrWorkerLost) {
		t.Fatal("a worker error matches ErrWorkerLost")
	}
}

func TestTimeoutMatchesContextDeadline(t *testing.T) {
	if !errors.Is(ErrTimeout, context.DeadlineExceeded) {
		t.Fatal("ErrTimeout does not match context.DeadlineExceeded")
	}
	if errors.Is(ErrTimeout, context.Canceled) {
		t.Fatal("ErrTimeout matches context.Canceled")
	}
	if ctxError(context.DeadlineExceeded) != ErrTimeout || ctxError(context.Canceled) != context.Canceled {
		t.Fatal("ctxError mapping")
	}
}

func TestConfigValidation(t *testing.T) {
	if err := (Config{HeartbeatInterval: 1}).Validate(); err == nil {
		t.Fatal("1ns heartbeat accepted")
	}
	if err := (Config{Endpoints: []string{""}}).Validate(); err == nil {
		t.Fatal("empty endpoint accepted")
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestExecuteRejectsBadCallsAtOnce(t *testing.T) {
	c, err := New(Config{Endpoints: []string{"tcp://127.0.0.1:1"}, MaxPayload: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Execute(context.Background(), make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := c.Execute(context.Background(), nil, WithService(string(make([]byte, 256)))); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("long service: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Execute(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	c.Close()
	if _, err := c.Execute(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
