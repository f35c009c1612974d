package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/worker"
)

func TestSmoke(t *testing.T) {
	b, err := broker.New(broker.Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*", HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	w, _ := worker.New(worker.Config{Backend: b.Backend()}, worker.HandlerFunc(func(ctx context.Context, j *worker.Job) ([]byte, error) {
		return append([]byte("echo:"), j.Payload...), nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	c, err := client.Dial(b.Frontend())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 10; i++ {
		start := time.Now()
		res, err := c.Execute(context.Background(), []byte("hi"))
		t.Log(string(res), err, time.Since(start))
	}
	cancel()
	t.Log(<-done)
}
