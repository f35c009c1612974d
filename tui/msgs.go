package tui

import (
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/hose-project/hose/stats"
)

// SnapshotMsg is one snapshot from the broker, decoded.
type SnapshotMsg struct {
	Snap *stats.Snapshot
	// Total is Snap.Latency.Total decoded (nil when it could not be).
	Total *hdrhistogram.Histogram
	// At is when hosetop received it.
	At time.Time
}

// WaitingMsg says no snapshot arrives from the broker at Endpoint: none yet,
// or none since LastSeen (zero when never). The source keeps trying.
type WaitingMsg struct {
	Endpoint string
	LastSeen time.Time
	At       time.Time
	Err      string // a decoding problem, if that is why
}

// tickMsg is the clock: it keeps ages and the waiting state current.
type tickMsg time.Time

// controlMsg is the answer to a worker-count request.
type controlMsg struct {
	set     bool // answer to a set (not a get)
	workers int
	err     error
}

// exportMsg reports a comparison export.
type exportMsg struct {
	paths []string
	err   error
}
