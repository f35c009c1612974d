package stats_test

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hose-project/hose/stats"
)

func TestSummarizeRoundTrip(t *testing.T) {
	h := stats.NewHistogram()
	for v := int64(1); v <= 1000; v++ {
		_ = h.RecordValue(v * 10)
	}
	sum, err := stats.Summarize(h)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Count != 1000 || sum.P50US < 4950 || sum.P50US > 5050 || sum.P99US < 9850 || sum.MaxUS < 9950 {
		t.Fatalf("summary %+v", sum)
	}
	d, err := sum.Histogram()
	if err != nil {
		t.Fatal(err)
	}
	if d.TotalCount() != 1000 || d.ValueAtQuantile(99.9) != sum.P999US || d.ValueAtQuantile(50) != sum.P50US {
		t.Fatalf("decoded %d values, p50 %d p99.9 %d", d.TotalCount(), d.ValueAtQuantile(50), d.ValueAtQuantile(99.9))
	}
	// Decoded histograms merge into one of the broker's range.
	all := stats.NewHistogram()
	all.Merge(d)
	all.Merge(d)
	if p := stats.PercentilesOf(all); p.Count != 2000 || p.P50 != sum.P50US {
		t.Fatalf("merged %+v", p)
	}
	empty, err := stats.Hist{}.Histogram()
	if err != nil || empty.TotalCount() != 0 {
		t.Fatalf("empty: %v %v", empty, err)
	}
	if _, err := (stats.Hist{HDR: "bm90IGEgaGlzdG9ncmFt"}).Histogram(); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestDecode(t *testing.T) {
	s := &stats.Snapshot{Seq: 3, Broker: stats.Broker{Instance: "00000000000000ab"}, Totals: stats.Counters{Replied: 5}}
	data, err := stats.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := stats.Decode(data)
	if err != nil || got.Seq != 3 || got.Totals.Replied != 5 {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	if _, err := stats.Decode([]byte(`{"schema":99}`)); !errors.Is(err, stats.ErrSchema) {
		t.Fatalf("schema 99: %v", err)
	}
	if _, err := stats.Decode([]byte(`{`)); err == nil {
		t.Fatal("truncated JSON decoded")
	}
}

// TestAuthDeniedCompatible checks the rule of docs/STATS.md for fields
// added within a schema: the new total is written, a snapshot from a
// broker that predates it still decodes (as 0), and a snapshot with it
// decodes for a reader that only knows the older fields.
func TestAuthDeniedCompatible(t *testing.T) {
	data, err := stats.Encode(&stats.Snapshot{Totals: stats.Counters{AuthDenied: 7}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"auth_denied":7`)) {
		t.Fatalf("encoded snapshot lacks auth_denied: %s", data)
	}
	old, err := stats.Decode([]byte(`{"schema":1,"seq":2,"totals":{"received":4,"workers_lost":1}}`))
	if err != nil || old.Totals.AuthDenied != 0 || old.Totals.Received != 4 {
		t.Fatalf("snapshot without auth_denied: %+v, %v", old, err)
	}
	var older struct {
		Schema int `json:"schema"`
		Totals struct {
			WorkersLost uint64 `json:"workers_lost"`
		} `json:"totals"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&older); err != nil || older.Schema != stats.Schema {
		t.Fatalf("an older reader: %+v, %v", older, err)
	}
}

func TestBetween(t *testing.T) {
	snap := func(inst string, up float64, replied, errs uint64) *stats.Snapshot {
		return &stats.Snapshot{
			Time:   time.Unix(int64(up), 0),
			Broker: stats.Broker{Instance: inst, UptimeS: up},
			Totals: stats.Counters{Replied: replied, Errors: errs, Received: replied + errs},
		}
	}
	for _, tc := range []struct {
		name      string
		prev, cur *stats.Snapshot
		ok        bool
		replied   float64
		errRatio  float64
	}{
		{"steady", snap("a", 10, 100, 0), snap("a", 12, 300, 0), true, 100, 0},
		{"errors", snap("a", 10, 100, 0), snap("a", 11, 190, 10), true, 90, 0.1},
		{"restart", snap("a", 10, 100, 0), snap("b", 1, 10, 0), false, 0, 0},
		{"same time", snap("a", 10, 100, 0), snap("a", 10, 100, 0), false, 0, 0},
		{"counter went down", snap("a", 10, 100, 0), snap("a", 11, 50, 0), false, 0, 0},
		{"nil", nil, snap("a", 1, 1, 0), false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := stats.Between(tc.prev, tc.cur)
			if ok != tc.ok || r.Replied != tc.replied || r.ErrorRatio() != tc.errRatio {
				t.Fatalf("got %+v ok=%v ratio %g", r, ok, r.ErrorRatio())
			}
		})
	}
}

func TestSnapshotHelpers(t *testing.T) {
	s := &stats.Snapshot{
		Queues:       []stats.Queue{{Service: "a", Depth: 2}, {Service: "b", Depth: 3}},
		WorkerStates: map[string]int{stats.StateReady: 2, stats.StateBusy: 1, stats.StateLost: 4},
		Workers:      []stats.Worker{{ID: 7}, {ID: 9}},
	}
	if s.QueueDepth() != 5 || s.Live() != 3 || s.Worker(9) == nil || s.Worker(8) != nil {
		t.Fatal("helpers")
	}
}

// TestEncoderMatchesTheLibrary: the Encoder's output decodes to the same
// histogram, and its inflated payload is byte for byte the library's.
func TestEncoderMatchesTheLibrary(t *testing.T) {
	e := stats.NewEncoder()
	for _, tc := range []struct {
		name   string
		values []int64
	}{
		{"empty", nil},
		{"one", []int64{1}},
		{"spread", []int64{1, 2, 3, 100, 101, 5000, 5001, 5002, 77777, 1 << 20, 3_000_000_000}},
		{"big counts", []int64{42, 42, 42}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := stats.NewHistogram()
			for _, v := range tc.values {
				_ = h.RecordValue(v)
			}
			if tc.name == "big counts" {
				_ = h.RecordValues(7, 1<<40)
			}
			mine, err := e.Summarize(h)
			if err != nil {
				t.Fatal(err)
			}
			lib, err := stats.Summarize(h)
			if err != nil {
				t.Fatal(err)
			}
			if inflate(t, mine.HDR) != inflate(t, lib.HDR) {
				t.Fatal("the inflated encodings differ")
			}
			d, err := mine.Histogram()
			if err != nil {
				t.Fatal(err)
			}
			if !d.Equals(h) || mine.Count != lib.Count || mine.P99US != lib.P99US {
				t.Fatalf("decoded %d values; summaries %+v vs %+v", d.TotalCount(), mine, lib)
			}
		})
	}
}

// inflate returns the inflated payload of an encoded histogram.
func inflate(t *testing.T, enc string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(raw[8:]))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
