package protocol

import (
	"encoding/binary"
)

// reader decodes big-endian fields and remembers the first error, so a
// decoder reads every field and checks once.
type reader struct {
	b   []byte
	err error
}

func (r *reader) u8() byte {
	if r.err != nil || len(r.b) < 1 {
		r.err = ErrShort
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 {
	if r.err != nil || len(r.b) < 2 {
		r.err = ErrShort
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32() uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.err = ErrShort
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.err = ErrShort
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) str8() string {
	n := int(r.u8())
	if r.err != nil || len(r.b) < n {
		r.err = ErrShort
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func appendStr8(dst []byte, s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	dst = append(dst, byte(len(s)))
	return append(dst, s...)
}

// Pong is the body of PONG, the broker's answer to PING.
//
//	u64 nonce       copied from the PING
//	u64 instance    random per broker process: a new value means the broker restarted
//	u32 pid
//	u64 uptime_ms
//	u32 workers     registered workers
//	u32 queued      jobs waiting for a worker
//	u32 inflight    jobs at workers
//	u8  state       0 running, 1 draining
//	str8 version
//	str8 hostname
type Pong struct {
	Nonce    uint64
	Instance uint64
	PID      uint32
	UptimeMS uint64
	Workers  uint32
	Queued   uint32
	InFlight uint32
	Draining bool
	Version  string
	Host     string
}

// AppendPong encodes a PONG body.
func AppendPong(dst []byte, p *Pong) []byte {
	dst = binary.BigEndian.AppendUint64(dst, p.Nonce)
	dst = binary.BigEndian.AppendUint64(dst, p.Instance)
	dst = binary.BigEndian.AppendUint32(dst, p.PID)
	dst = binary.BigEndian.AppendUint64(dst, p.UptimeMS)
	dst = binary.BigEndian.AppendUint32(dst, p.Workers)
	dst = binary.BigEndian.AppendUint32(dst, p.Queued)
	dst = binary.BigEndian.AppendUint32(dst, p.InFlight)
	var st byte
	if p.Draining {
		st = 1
	}
	dst = append(dst, st)
	dst = appendStr8(dst, p.Version)
	return appendStr8(dst, p.Host)
}

// DecodePong decodes a PONG body.
func DecodePong(b []byte) (Pong, error) {
	r := reader{b: b}
	p := Pong{
		Nonce: r.u64(), Instance: r.u64(), PID: r.u32(), UptimeMS: r.u64(),
		Workers: r.u32(), Queued: r.u32(), InFlight: r.u32(), Draining: r.u8() == 1,
	}
	p.Version = r.str8()
	p.Host = r.str8()
	return p, r.err
}

// AppendU64 appends one big-endian u64 (CANCEL ids).
func AppendU64(dst []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(dst, v) }

// AppendPing appends a PING body: the nonce and the client's heartbeat
// interval in milliseconds (0: no promise).
func AppendPing(dst []byte, nonce uint64, intervalMS uint32) []byte {
	dst = binary.BigEndian.AppendUint64(dst, nonce)
	return binary.BigEndian.AppendUint32(dst, intervalMS)
}

// DecodePing reads a PING body; fields it lacks read 0, and bytes past them
// are ignored (later versions may add fields).
func DecodePing(b []byte) (nonce uint64, intervalMS uint32) {
	if len(b) >= 8 {
		nonce = binary.BigEndian.Uint64(b)
	}
	if len(b) >= 12 {
		intervalMS = binary.BigEndian.Uint32(b[8:])
	}
	return nonce, intervalMS
}

// DecodeU64s calls fn for each u64 of a CANCEL body.
func DecodeU64s(b []byte, fn func(uint64)) error {
	if len(b)%8 != 0 {
		return ErrShort
	}
	for ; len(b) > 0; b = b[8:] {
		fn(binary.BigEndian.Uint64(b))
	}
	return nil
}

// AppendError encodes an ERROR body: u8 status, then a UTF-8 message.
func AppendError(dst []byte, st Status, msg string) []byte {
	return append(append(dst, byte(st)), msg...)
}

// DecodeError decodes an ERROR body.
func DecodeError(b []byte) (Status, string, error) {
	if len(b) < 1 {
		return 0, "", ErrShort
	}
	return Status(b[0]), string(b[1:]), nil
}

// Ready is the body of READY, a worker's registration.
//
//	u16 capacity    jobs the worker accepts at once (at least 1)
//	u32 pid
//	str8 hostname
//	str8 version
//	u8  service count, then str8 per service (none means "default")
type Ready struct {
	Capacity uint16
	PID      uint32
	Host     string
	Version  string
	Services []string
}

// AppendReady encodes a READY body.
func AppendReady(dst []byte, rd *Ready) []byte {
	dst = binary.BigEndian.AppendUint16(dst, rd.Capacity)
	dst = binary.BigEndian.AppendUint32(dst, rd.PID)
	dst = appendStr8(dst, rd.Host)
	dst = appendStr8(dst, rd.Version)
	n := len(rd.Services)
	if n > 255 {
		n = 255
	}
	dst = append(dst, byte(n))
	for _, s := range rd.Services[:n] {
		dst = appendStr8(dst, s)
	}
	return dst
}

// DecodeReady decodes a READY body.
func DecodeReady(b []byte) (Ready, error) {
	r := reader{b: b}
	rd := Ready{Capacity: r.u16(), PID: r.u32(), Host: r.str8(), Version: r.str8()}
	n := int(r.u8())
	for i := 0; i < n && r.err == nil; i++ {
		rd.Services = append(rd.Services, r.str8())
	}
	return rd, r.err
}

// Welcome is the body of WELCOME, the broker's answer to READY. The worker
// adopts these settings so the two sides cannot disagree on liveness.
//
//	u32 worker id      assigned by the broker, for logs and stats
//	u32 heartbeat_ms   interval at which both sides send when otherwise idle
//	u8  liveness       silent intervals after which the peer is dead
//	u32 max_payload    largest result payload the broker accepts
//	u64 instance       the broker's instance id (see Pong)
type Welcome struct {
	WorkerID    uint32
	HeartbeatMS uint32
	Liveness    uint8
	MaxPayload  uint32
	Instance    uint64
}

// AppendWelcome encodes a WELCOME body.
func AppendWelcome(dst []byte, w *Welcome) []byte {
	dst = binary.BigEndian.AppendUint32(dst, w.WorkerID)
	dst = binary.BigEndian.AppendUint32(dst, w.HeartbeatMS)
	dst = append(dst, w.Liveness)
	dst = binary.BigEndian.AppendUint32(dst, w.MaxPayload)
	return binary.BigEndian.AppendUint64(dst, w.Instance)
}

// DecodeWelcome decodes a WELCOME body.
func DecodeWelcome(b []byte) (Welcome, error) {
	r := reader{b: b}
	w := Welcome{WorkerID: r.u32(), HeartbeatMS: r.u32(), Liveness: r.u8(), MaxPayload: r.u32(), Instance: r.u64()}
	return w, r.err
}
