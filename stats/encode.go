package stats

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// HdrHistogram's V2 encoding cookies: the compressed envelope and the
// encoding inside it (the low nibble of 0x10 is the "word size" marker every
// implementation writes and ignores).
const (
	cookieV2           = 0x1c849303 | 0x10
	cookieV2Compressed = 0x1c849304 | 0x10
)

// Encoder writes histograms in HdrHistogram's standard V2 compressed form,
// as hdrhistogram.Histogram.Encode does, but reuses its buffers and its
// compressor: a publisher that encodes every second makes no garbage. An
// Encoder belongs to one goroutine.
type Encoder struct {
	raw []byte
	z   bytes.Buffer
	zw  *zlib.Writer
	env []byte
	b64 []byte
}

// NewEncoder returns an Encoder.
func NewEncoder() *Encoder {
	e := &Encoder{}
	e.zw, _ = zlib.NewWriterLevel(&e.z, zlib.DefaultCompression)
	return e
}

// Encode returns h in the V2 compressed form, base64.
func (e *Encoder) Encode(h *hdrhistogram.Histogram) (string, error) {
	snap := h.Export()
	counts := snap.Counts
	n := len(counts)
	for n > 1 && counts[n-1] == 0 {
		n--
	}
	// The counts: ZigZag LEB128 varints, a run of empty buckets written as
	// its negated length.
	payload := e.raw[:0]
	payload = append(payload, make([]byte, 40)...)
	for i := 0; i < n; {
		if counts[i] != 0 {
			payload = appendZigZag(payload, counts[i])
			i++
			continue
		}
		k := i
		for k < n && counts[k] == 0 {
			k++
		}
		if k-i == 1 {
			payload = appendZigZag(payload, 0)
		} else {
			payload = appendZigZag(payload, -int64(k-i))
		}
		i = k
	}
	ratio := snap.IntegerToDoubleConversionRatio
	if ratio == 0 {
		ratio = 1
	}
	hdr := payload[:40]
	binary.BigEndian.PutUint32(hdr[0:], cookieV2)
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(payload)-40))
	binary.BigEndian.PutUint32(hdr[8:], 0) // normalizing index offset
	binary.BigEndian.PutUint32(hdr[12:], uint32(snap.SignificantFigures))
	binary.BigEndian.PutUint64(hdr[16:], uint64(snap.LowestTrackableValue))
	binary.BigEndian.PutUint64(hdr[24:], uint64(snap.HighestTrackableValue))
	binary.BigEndian.PutUint64(hdr[32:], math.Float64bits(ratio))
	e.raw = payload

	e.z.Reset()
	e.zw.Reset(&e.z)
	if _, err := e.zw.Write(payload); err != nil {
		return "", fmt.Errorf("stats: compress histogram: %w", err)
	}
	if err := e.zw.Close(); err != nil {
		return "", fmt.Errorf("stats: compress histogram: %w", err)
	}
	env := append(e.env[:0], make([]byte, 8)...)
	binary.BigEndian.PutUint32(env[0:], cookieV2Compressed)
	binary.BigEndian.PutUint32(env[4:], uint32(e.z.Len()))
	env = append(env, e.z.Bytes()...)
	e.env = env
	e.b64 = base64.StdEncoding.AppendEncode(e.b64[:0], env)
	return string(e.b64), nil
}

// Summarize computes h's summary figures and its compressed form.
func (e *Encoder) Summarize(h *hdrhistogram.Histogram) (Hist, error) {
	out := summary(h)
	enc, err := e.Encode(h)
	out.HDR = enc
	return out, err
}

func summary(h *hdrhistogram.Histogram) Hist {
	out := Hist{Count: h.TotalCount()}
	if out.Count > 0 {
		out.MinUS = h.Min()
		out.MaxUS = h.Max()
		out.MeanUS = h.Mean()
		out.P50US = h.ValueAtQuantile(50)
		out.P90US = h.ValueAtQuantile(90)
		out.P99US = h.ValueAtQuantile(99)
		out.P999US = h.ValueAtQuantile(99.9)
	}
	return out
}

// appendZigZag appends v as a ZigZag LEB128-64b9B varint: 7 bits a byte,
// the ninth byte (if any) carrying the last 8.
func appendZigZag(dst []byte, v int64) []byte {
	u := uint64((v << 1) ^ (v >> 63))
	for i := 0; i < 8; i++ {
		if u>>7 == 0 {
			return append(dst, byte(u))
		}
		dst = append(dst, byte(u&0x7f|0x80))
		u >>= 7
	}
	return append(dst, byte(u))
}
