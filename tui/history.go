package tui

import (
	"time"

	"github.com/hose-project/hose/stats"
)

// point is one refresh of the charts.
type point struct {
	At      time.Time
	Rate    float64 // jobs answered ok per second
	ErrRate float64 // error answers per second
	Lat     stats.Percentiles
	Queue   int
	Live    int
}

// ring keeps the last cap values pushed.
type ring[T any] struct {
	buf   []T
	start int
}

func newRing[T any](n int) *ring[T] { return &ring[T]{buf: make([]T, 0, n)} }

func (r *ring[T]) push(v T) {
	if len(r.buf) < cap(r.buf) {
		r.buf = append(r.buf, v)
		return
	}
	r.buf[r.start] = v
	r.start = (r.start + 1) % len(r.buf)
}

func (r *ring[T]) len() int { return len(r.buf) }

// at returns the i-th oldest value.
func (r *ring[T]) at(i int) T { return r.buf[(r.start+i)%len(r.buf)] }

// last returns the newest value; ok is false when empty.
func (r *ring[T]) last() (T, bool) {
	var zero T
	if len(r.buf) == 0 {
		return zero, false
	}
	return r.at(len(r.buf) - 1), true
}

// tail returns up to n newest values, oldest first.
func (r *ring[T]) tail(n int) []T {
	if n > len(r.buf) {
		n = len(r.buf)
	}
	out := make([]T, n)
	for i := range out {
		out[i] = r.at(len(r.buf) - n + i)
	}
	return out
}

// workerPoint is one refresh of a worker's figures.
type workerPoint struct {
	Rate     float64
	P50, P99 int64
}

// Sizes of the histories: enough for the widest chart.
const (
	historyLen       = 600
	workerHistoryLen = 240
)
