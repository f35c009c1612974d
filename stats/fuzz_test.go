package stats

import (
	"os"
	"regexp"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the snapshot decoder and to the
// histogram decoder behind it: errors are fine, panics are not.
func FuzzDecode(f *testing.F) {
	h := NewHistogram()
	for _, v := range []int64{1, 10, 100, 1000, 123456} {
		_ = h.RecordValue(v)
	}
	sum, err := Summarize(h)
	if err != nil {
		f.Fatal(err)
	}
	snap := &Snapshot{Latency: Latency{QueueWait: sum, Service: sum, Total: sum}}
	good, err := Encode(snap)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	// The documented example: a real snapshot with real histograms.
	doc, err := os.ReadFile("../docs/STATS.md")
	if err != nil {
		f.Fatal(err)
	}
	example := regexp.MustCompile("(?s)```json\n(.*?)```").FindSubmatch(doc)
	if example == nil {
		f.Fatal("docs/STATS.md has no json example")
	}
	if _, err := Decode(example[1]); err != nil {
		f.Fatalf("the example in docs/STATS.md: %v", err)
	}
	f.Add(example[1])
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"latency":{"service":{"hdr":"HISTFAAAACB4nJNpmSzMwMDAxAABzFCaEUzLMdgzMDADANFOAXU="}}}`))
	f.Add([]byte(`{"workers":[{"id":1}],"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode(data)
		if err != nil {
			return
		}
		for _, hist := range []Hist{s.Latency.QueueWait, s.Latency.Service, s.Latency.Total} {
			_, _ = hist.Histogram()
		}
		_ = s.Live()
		_ = s.QueueDepth()
	})
}
