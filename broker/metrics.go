package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hose-project/hose/stats"
)

// The Prometheus endpoint serves the figures of the latest stats snapshot,
// which the loop goroutine hands over at every interval: the HTTP goroutines
// never touch the broker's state.

// latencyBounds are the buckets of the latency histograms, in seconds.
var latencyBounds = []float64{
	50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3,
	100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10, 30, 60,
}

// cumHist is a cumulative Prometheus histogram built from the interval HDR
// histograms.
type cumHist struct {
	count   uint64
	sumSec  float64
	buckets []uint64 // counts of values <= latencyBounds[i], cumulative
}

// add returns c plus the values of h.
func (c cumHist) add(h *hdrhistogram.Histogram) cumHist {
	out := cumHist{count: c.count, sumSec: c.sumSec, buckets: make([]uint64, len(latencyBounds))}
	copy(out.buckets, c.buckets)
	n := h.TotalCount()
	if n == 0 {
		return out
	}
	out.count += uint64(n)
	out.sumSec += h.Mean() * float64(n) / 1e6
	perBucket := make([]uint64, len(latencyBounds))
	for _, bar := range h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		sec := float64(bar.To) / 1e6
		for i, b := range latencyBounds {
			if sec <= b {
				perBucket[i] += uint64(bar.Count)
				break
			}
		}
	}
	var run uint64
	for i := range out.buckets {
		run += perBucket[i]
		out.buckets[i] += run
	}
	return out
}

func (c cumHist) metric(d *prometheus.Desc) prometheus.Metric {
	m := make(map[float64]uint64, len(latencyBounds))
	for i, b := range latencyBounds {
		if c.buckets != nil {
			m[b] = c.buckets[i]
		} else {
			m[b] = 0
		}
	}
	return prometheus.MustNewConstHistogram(d, c.count, c.sumSec, m)
}

// metricsView is what one scrape reads; it is never modified once stored.
type metricsView struct {
	snap                  *stats.Snapshot
	queue, service, total cumHist
}

type metricsServer struct {
	ln   net.Listener
	srv  *http.Server
	view atomic.Pointer[metricsView]
	wg   sync.WaitGroup
	once sync.Once
}

// startMetrics listens on Config.Metrics and serves /metrics. Called from
// open, before the loop starts.
func (b *Broker) startMetrics() error {
	if b.cfg.Metrics == "" {
		return nil
	}
	ln, err := net.Listen("tcp", b.cfg.Metrics)
	if err != nil {
		return fmt.Errorf("broker: metrics: %w", err)
	}
	m := &metricsServer{ln: ln}
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{m: m})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "hose broker: metrics at /metrics")
	})
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.cfg.Logger.Error("metrics server failed", "err", err)
		}
	}()
	b.obs.metrics = m
	b.cfg.Logger.Info("metrics listening", "addr", ln.Addr().String())
	return nil
}

// stopMetrics closes the metrics server and waits for it. Safe when off.
func (b *Broker) stopMetrics() {
	m := b.obs.metrics
	if m == nil {
		return
	}
	m.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if m.srv.Shutdown(ctx) != nil {
			_ = m.srv.Close()
		}
		m.wg.Wait()
	})
}

// MetricsAddr is the address the metrics server listens on (the port
// resolved), or "" when it is off.
func (b *Broker) MetricsAddr() string {
	if m := b.obs.metrics; m != nil {
		return m.ln.Addr().String()
	}
	return ""
}

// update hands the loop's latest figures to the HTTP side. Loop goroutine.
func (m *metricsServer) update(snap *stats.Snapshot, o *observations) {
	v := &metricsView{snap: snap}
	if old := m.view.Load(); old != nil {
		v.queue, v.service, v.total = old.queue, old.service, old.total
	}
	v.queue = v.queue.add(o.queue)
	v.service = v.service.add(o.service)
	v.total = v.total.add(o.total)
	m.view.Store(v)
}

var (
	workerLabels = []string{"worker", "host", "pid"}

	descInfo = prometheus.NewDesc("hose_broker_info", "The broker's identity (always 1).",
		[]string{"version", "host", "pid", "instance"}, nil)
	descUptime    = prometheus.NewDesc("hose_broker_uptime_seconds", "Time since the broker started.", nil, nil)
	descReceived  = prometheus.NewDesc("hose_requests_received_total", "Request records received.", nil, nil)
	descDispatch  = prometheus.NewDesc("hose_jobs_dispatched_total", "Jobs sent to workers (a requeued job counts again).", nil, nil)
	descReplied   = prometheus.NewDesc("hose_replies_ok_total", "Answers with status ok.", nil, nil)
	descErrors    = prometheus.NewDesc("hose_errors_total", "Answers with an error status, by kind.", []string{"kind"}, nil)
	descRequeued  = prometheus.NewDesc("hose_jobs_requeued_total", "Idempotent jobs run again after their worker was lost.", nil, nil)
	descLate      = prometheus.NewDesc("hose_late_results_total", "Results for jobs already answered or unknown.", nil, nil)
	descCancelled = prometheus.NewDesc("hose_jobs_cancelled_total", "Queued jobs dropped because their caller left.", nil, nil)
	descMalformed = prometheus.NewDesc("hose_malformed_messages_total", "Messages dropped or refused as malformed.", nil, nil)
	descUnroute   = prometheus.NewDesc("hose_unroutable_replies_total", "Replies that could not reach their client.", nil, nil)
	descLost      = prometheus.NewDesc("hose_workers_lost_total", "Workers dropped for silence, slowness or unreachability.", nil, nil)
	descAuth      = prometheus.NewDesc("hose_auth_denied_total", "CURVE handshakes refused: the peer's key is not on the socket's allow-list.", nil, nil)
	descAbandoned = prometheus.NewDesc("hose_jobs_abandoned_total", "Queued jobs dropped because their client went silent.", nil, nil)
	descInFlight  = prometheus.NewDesc("hose_jobs_in_flight", "Jobs at workers.", nil, nil)
	descClients   = prometheus.NewDesc("hose_clients", "Clients seen recently.", nil, nil)
	descDepth     = prometheus.NewDesc("hose_queue_depth", "Jobs waiting for a worker, by service.", []string{"service"}, nil)
	descHWM       = prometheus.NewDesc("hose_queue_high_water", "Deepest the queue was during the last stats interval.", []string{"service"}, nil)
	descSvcWork   = prometheus.NewDesc("hose_service_workers", "Registered workers serving the service.", []string{"service"}, nil)
	descWorkers   = prometheus.NewDesc("hose_workers", "Workers by state (lost ones for a minute after they were dropped).", []string{"state"}, nil)
	descWInfo     = prometheus.NewDesc("hose_worker_info", "A worker's state and version (always 1).", append(workerLabels, "state", "version"), nil)
	descWCap      = prometheus.NewDesc("hose_worker_capacity", "Jobs the worker may hold at once.", workerLabels, nil)
	descWInFlight = prometheus.NewDesc("hose_worker_in_flight", "Jobs the worker holds.", workerLabels, nil)
	descWDone     = prometheus.NewDesc("hose_worker_jobs_total", "Results the worker returned.", workerLabels, nil)
	descWErrors   = prometheus.NewDesc("hose_worker_errors_total", "Error results the worker returned.", workerLabels, nil)
	descWHeard    = prometheus.NewDesc("hose_worker_last_heard_seconds", "Time since the worker was last heard from.", workerLabels, nil)
	descWService  = prometheus.NewDesc("hose_worker_service_seconds", "The worker's service time over the last stats interval.", append(workerLabels, "quantile"), nil)
	descQueueWait = prometheus.NewDesc("hose_queue_wait_seconds", "Time from a request's arrival to its dispatch.", nil, nil)
	descService   = prometheus.NewDesc("hose_service_seconds", "Time from dispatch to the worker's result.", nil, nil)
	descLatency   = prometheus.NewDesc("hose_latency_seconds", "Time from a request's arrival to the worker's result.", nil, nil)
)

// collector turns the latest view into Prometheus metrics at each scrape.
type collector struct{ m *metricsServer }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descInfo, descUptime, descReceived, descDispatch, descReplied, descErrors, descRequeued,
		descLate, descCancelled, descAbandoned, descMalformed, descUnroute, descLost, descAuth, descInFlight, descClients,
		descDepth, descHWM, descSvcWork, descWorkers, descWInfo, descWCap, descWInFlight, descWDone,
		descWErrors, descWHeard, descWService, descQueueWait, descService, descLatency,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	v := c.m.view.Load()
	if v == nil {
		return
	}
	s := v.snap
	gauge := func(d *prometheus.Desc, x float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, x, labels...)
	}
	counter := func(d *prometheus.Desc, x uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(x), labels...)
	}
	gauge(descInfo, 1, s.Broker.Version, s.Broker.Host, strconv.FormatUint(uint64(s.Broker.PID), 10), s.Broker.Instance)
	gauge(descUptime, s.Broker.UptimeS)
	t := s.Totals
	counter(descReceived, t.Received)
	counter(descDispatch, t.Dispatched)
	counter(descReplied, t.Replied)
	for _, e := range s.Errors {
		counter(descErrors, e.Total, e.Kind)
	}
	counter(descRequeued, t.Requeued)
	counter(descLate, t.Late)
	counter(descCancelled, t.Cancelled)
	counter(descMalformed, t.Malformed)
	counter(descUnroute, t.Unroutable)
	counter(descLost, t.WorkersLost)
	counter(descAuth, t.AuthDenied)
	counter(descAbandoned, t.Abandoned)
	gauge(descInFlight, float64(s.Broker.InFlight))
	gauge(descClients, float64(s.Broker.Clients))
	for _, q := range s.Queues {
		gauge(descDepth, float64(q.Depth), q.Service)
		gauge(descHWM, float64(q.HighWater), q.Service)
		gauge(descSvcWork, float64(q.Workers), q.Service)
	}
	for _, st := range stats.States {
		gauge(descWorkers, float64(s.WorkerStates[st]), st)
	}
	for i := range s.Workers {
		w := &s.Workers[i]
		l := []string{strconv.FormatUint(uint64(w.ID), 10), w.Host, strconv.FormatUint(uint64(w.PID), 10)}
		gauge(descWInfo, 1, append(l, w.State, w.Version)...)
		if w.State == stats.StateLost {
			continue
		}
		gauge(descWCap, float64(w.Capacity), l...)
		gauge(descWInFlight, float64(w.InFlight), l...)
		counter(descWDone, w.Done, l...)
		counter(descWErrors, w.Errors, l...)
		gauge(descWHeard, w.LastHeardMS/1e3, l...)
		if w.Jobs > 0 {
			gauge(descWService, float64(w.P50US)/1e6, append(l, "0.5")...)
			gauge(descWService, float64(w.P99US)/1e6, append(l, "0.99")...)
		}
	}
	ch <- v.queue.metric(descQueueWait)
	ch <- v.service.metric(descService)
	ch <- v.total.metric(descLatency)
}
