package loadgen

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/cluster"
	"github.com/hose-project/hose/worker"
)

// target is what the runs send to: an embedded cluster or a live one.
type target struct {
	local  *cluster.Local // nil for a live cluster
	client *client.Client // nil when Config.Executor is set
	exec   Executor
	name   string
}

// openTarget starts the embedded cluster with its first worker count, or
// checks that the live cluster answers.
func openTarget(ctx context.Context, cfg Config) (*target, error) {
	t := &target{}
	endpoints := cfg.Broker
	if len(endpoints) == 0 {
		h := cfg.Handler
		if h == nil {
			h = cfg.Job.Handler()
		}
		wcfg := worker.Config{Concurrency: cfg.WorkerConcurrency, Logger: cfg.Logger}
		if cfg.Service != "" {
			wcfg.Services = []string{cfg.Service}
		}
		local, err := cluster.StartLocal(cluster.LocalConfig{
			Broker: broker.Config{
				// The generator's in-flight cap, not the broker's queue
				// bound, should be what limits an overloaded run.
				MaxQueue:       max(broker.DefaultConfig().MaxQueue, cfg.MaxInFlight+1),
				DefaultTimeout: cfg.Timeout,
				Logger:         cfg.Logger,
			},
			Workers: cfg.Workers[0],
			Worker:  wcfg,
			Handler: h,
			Logger:  cfg.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("loadgen: embedded cluster: %w", err)
		}
		t.local = local
		t.name = "embedded"
		endpoints = []string{local.Frontend()}
	} else {
		t.name = strings.Join(endpoints, ",")
	}
	t.exec = cfg.Executor
	if t.exec == nil {
		c, err := client.New(client.Config{Endpoints: endpoints, DefaultTimeout: cfg.Timeout, Logger: cfg.Logger,
			CurveServerKey: cfg.CurveServerKey, CurvePublicKey: cfg.CurvePublicKey, CurveSecretKey: cfg.CurveSecretKey})
		if err != nil {
			t.close()
			return nil, err
		}
		t.client, t.exec = c, c
	}
	if t.local == nil && t.client != nil {
		if _, err := t.ping(ctx, 3*time.Second); err != nil {
			t.close()
			return nil, fmt.Errorf("loadgen: no broker answers at %s: %w", t.name, err)
		}
	}
	return t, nil
}

// ping asks the live broker for its state, trying again until limit: a
// client's first PING can leave before its connection is up and go
// unanswered (client.Ping does not resend it).
func (t *target) ping(ctx context.Context, limit time.Duration) (client.BrokerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		info, err := t.client.Ping(ctx)
		if err == nil || !errors.Is(err, client.ErrBrokerGone) || ctx.Err() != nil {
			return info, err
		}
	}
}

// setWorkers sets the embedded cluster's worker count.
func (t *target) setWorkers(n int) error {
	if t.local == nil {
		return errors.New("loadgen: cannot set the workers of a live cluster")
	}
	if t.local.Workers() == n {
		return nil
	}
	return t.local.SetWorkers(n)
}

// workers is the number of workers serving the target (0: unknown).
func (t *target) workers(ctx context.Context) int {
	if t.local != nil {
		return t.local.Workers()
	}
	if t.client == nil {
		return 0
	}
	info, err := t.ping(ctx, 2*time.Second)
	if err != nil {
		return 0
	}
	return info.Workers
}

func (t *target) close() error {
	var err error
	if t.client != nil {
		err = t.client.Close()
	}
	if t.local != nil {
		err = errors.Join(err, t.local.Close())
	}
	return err
}
