package protocol_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/hose-project/hose/protocol"
)

// ---- header frame ----

func TestHeader(t *testing.T) {
	tests := []struct {
		d    protocol.Dialect
		c    protocol.Command
		want string
	}{
		{protocol.Client, protocol.CmdRequest, "HOSEC1\x01"},
		{protocol.Client, protocol.CmdError, "HOSEC1\x06"},
		{protocol.Worker, protocol.CmdReady, "HOSEW1\x01"},
		{protocol.Worker, protocol.CmdDisconnect, "HOSEW1\x07"},
		{protocol.Worker, protocol.Command(0xff), "HOSEW1\xff"},
	}
	for _, tt := range tests {
		got := protocol.Header(tt.d, tt.c)
		if string(got) != tt.want {
			t.Errorf("Header(%c, %#x) = %q, want %q", tt.d, tt.c, got, tt.want)
		}
		if len(got) != protocol.HeaderLen {
			t.Errorf("len = %d, want HeaderLen %d", len(got), protocol.HeaderLen)
		}
	}
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name    string
		frame   string
		d       protocol.Dialect
		want    protocol.Command
		wantErr error
	}{
		{"client request", "HOSEC1\x01", protocol.Client, protocol.CmdRequest, nil},
		{"worker result", "HOSEW1\x04", protocol.Worker, protocol.CmdResult, nil},
		{"unknown command is returned", "HOSEC1\x00", protocol.Client, 0, nil},
		// Bytes after the seventh are ignored (see the report in PROTOCOL.md:
		// senders must not send them).
		{"trailing bytes", "HOSEC1\x03xyz", protocol.Client, protocol.CmdPing, nil},
		{"empty", "", protocol.Client, 0, protocol.ErrBadTag},
		{"prefix only", "HOSEC", protocol.Client, 0, protocol.ErrBadTag},
		{"no command byte", "HOSEC1", protocol.Client, 0, protocol.ErrBadTag},
		{"no command byte, other version", "HOSEC2", protocol.Client, 0, protocol.ErrBadTag},
		{"other tag", "MDPC01\x01", protocol.Client, 0, protocol.ErrBadTag},
		{"lower case", "hosec1\x01", protocol.Client, 0, protocol.ErrBadTag},
		{"worker header on client side", "HOSEW1\x01", protocol.Client, 0, protocol.ErrBadTag},
		{"client header on worker side", "HOSEC1\x01", protocol.Worker, 0, protocol.ErrBadTag},
		{"client version 2", "HOSEC2\x01", protocol.Client, 0, protocol.ErrVersion},
		{"worker version 0", "HOSEW0\x01", protocol.Worker, 0, protocol.ErrVersion},
		{"version byte not a digit", "HOSEW\xff\x01", protocol.Worker, 0, protocol.ErrVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.ParseHeader([]byte(tt.frame), tt.d)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("command = %#x, want %#x", got, tt.want)
			}
		})
	}
}

// ---- headers block ----

func TestHeadersBlock(t *testing.T) {
	long := strings.Repeat("v", 65535)
	tests := []struct {
		name  string
		pairs [][2]string
		want  map[string]string // DecodeHeaders: the first duplicate wins
	}{
		{"none", nil, nil},
		{"one", [][2]string{{"k", "v"}}, map[string]string{"k": "v"}},
		{"empty key and value", [][2]string{{"", ""}}, map[string]string{"": ""}},
		{"binary", [][2]string{{"\x00\xff", "\n\x00"}}, map[string]string{"\x00\xff": "\n\x00"}},
		{"first of duplicates wins", [][2]string{{"a", "1"}, {"b", "2"}, {"a", "3"}},
			map[string]string{"a": "1", "b": "2"}},
		{"longest key", [][2]string{{strings.Repeat("k", 255), "x"}},
			map[string]string{strings.Repeat("k", 255): "x"}},
		{"longest value", [][2]string{{"k", long[:65535-4]}}, map[string]string{"k": long[:65535-4]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var block []byte
			for _, p := range tt.pairs {
				block = protocol.AppendHeader(block, p[0], p[1])
			}
			if err := protocol.CheckHeaders(block); err != nil {
				t.Fatalf("CheckHeaders: %v", err)
			}
			var got [][2]string
			for b := block; len(b) > 0; {
				k, v, rest, err := protocol.NextHeader(b)
				if err != nil {
					t.Fatalf("NextHeader: %v", err)
				}
				got = append(got, [2]string{string(k), string(v)})
				b = rest
			}
			if !reflect.DeepEqual(got, tt.pairs) {
				t.Errorf("pairs = %q, want %q", got, tt.pairs)
			}
			m, err := protocol.DecodeHeaders(block)
			if err != nil {
				t.Fatalf("DecodeHeaders: %v", err)
			}
			if !reflect.DeepEqual(m, tt.want) {
				t.Errorf("DecodeHeaders = %q, want %q", m, tt.want)
			}
		})
	}
}

func TestHeadersBlockErrors(t *testing.T) {
	tests := []struct {
		name  string
		block string
	}{
		{"key length only", "\x03"},
		{"key overruns", "\x05ab\x00\x00"},
		{"no value length", "\x01k"},
		{"half value length", "\x01k\x00"},
		{"value overruns", "\x01k\x00\x05abc"},
		{"good pair then garbage", "\x01k\x00\x01v\x09"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := protocol.CheckHeaders([]byte(tt.block)); !errors.Is(err, protocol.ErrBadHeaders) {
				t.Errorf("CheckHeaders = %v, want ErrBadHeaders", err)
			}
			if _, err := protocol.DecodeHeaders([]byte(tt.block)); !errors.Is(err, protocol.ErrBadHeaders) {
				t.Errorf("DecodeHeaders = %v, want ErrBadHeaders", err)
			}
		})
	}
}

// ---- job (request) records ----

func jobEqual(a, b *protocol.Job) bool {
	return a.ID == b.ID && a.TimeoutMS == b.TimeoutMS && a.Flags == b.Flags &&
		bytes.Equal(a.Service, b.Service) && bytes.Equal(a.Headers, b.Headers) && bytes.Equal(a.Payload, b.Payload)
}

func TestJobRoundTrip(t *testing.T) {
	maxHeaders := protocol.AppendHeader(nil, "k", strings.Repeat("v", protocol.MaxHeadersLen-4))
	tests := []struct {
		name string
		job  protocol.Job
	}{
		{"zero", protocol.Job{}},
		{"typical", protocol.Job{ID: 7, TimeoutMS: 5000, Flags: protocol.FlagIdempotent, Service: []byte("echo"),
			Headers: protocol.AppendHeader(nil, "trace", "1"), Payload: []byte("hello")}},
		{"max fields", protocol.Job{ID: 1<<64 - 1, TimeoutMS: 1<<32 - 1, Flags: 0xff,
			Service: bytes.Repeat([]byte("s"), protocol.MaxServiceLen), Headers: maxHeaders,
			Payload: bytes.Repeat([]byte{0}, 1<<20)}},
		{"empty payload", protocol.Job{ID: 1, Service: []byte("x")}},
		{"binary payload", protocol.Job{ID: 2, Payload: []byte{0, 0, 0, 0xff}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := protocol.AppendJob([]byte("prefix"), &tt.job)
			rec := b[len("prefix"):]
			if got, want := len(rec), protocol.JobSize(len(tt.job.Service), len(tt.job.Headers), len(tt.job.Payload)); got != want {
				t.Errorf("encoded %d bytes, JobSize says %d", got, want)
			}
			var got protocol.Job
			rest, err := protocol.NextJob(rec, &got)
			if err != nil {
				t.Fatalf("NextJob: %v", err)
			}
			if len(rest) != 0 {
				t.Errorf("%d bytes left over", len(rest))
			}
			if !jobEqual(&got, &tt.job) {
				t.Errorf("got %+v, want %+v", got, tt.job)
			}
		})
	}
}

func TestJobBatch(t *testing.T) {
	jobs := []protocol.Job{
		{ID: 1, Payload: []byte("a")},
		{ID: 2, Service: []byte("svc"), Headers: protocol.AppendHeader(nil, "h", "v")},
		{ID: 3, TimeoutMS: 9, Payload: []byte("ccc")},
	}
	var body []byte
	for i := range jobs {
		body = protocol.AppendJob(body, &jobs[i])
	}
	var j protocol.Job
	for i := 0; len(body) > 0; i++ {
		var err error
		if body, err = protocol.NextJob(body, &j); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !jobEqual(&j, &jobs[i]) {
			t.Errorf("record %d: got %+v, want %+v", i, j, jobs[i])
		}
	}
}

func TestNextJobErrors(t *testing.T) {
	good := protocol.AppendJob(nil, &protocol.Job{ID: 1, Service: []byte("svc"), Payload: []byte("p")})
	tests := []struct {
		name string
		body []byte
		want error
	}{
		{"empty", nil, protocol.ErrShort},
		{"short length", []byte{0, 0, 1}, protocol.ErrShort},
		{"length past end", good[:len(good)-1], protocol.ErrShort},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 0}, protocol.ErrShort},
		{"fixed part missing", append([]byte{0, 0, 0, 15}, make([]byte, 15)...), protocol.ErrShort},
		{"service overruns", append([]byte{0, 0, 0, 16}, append(make([]byte, 13), 1, 0, 0)...), protocol.ErrShort},
		{"headers overrun", append([]byte{0, 0, 0, 16}, append(make([]byte, 14), 0, 1)...), protocol.ErrShort},
		{"bad headers", append([]byte{0, 0, 0, 17}, append(make([]byte, 14), 0, 1, 9)...), protocol.ErrBadHeaders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j protocol.Job
			if _, err := protocol.NextJob(tt.body, &j); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// ---- reply and result records ----

func TestReplyRoundTrip(t *testing.T) {
	tests := []protocol.Reply{
		{},
		{ID: 9, Status: protocol.StatusOK, QueueUS: 12, ServiceUS: 345, Payload: []byte("result")},
		{ID: 1<<64 - 1, Status: protocol.StatusDeadline, QueueUS: 1<<32 - 1, ServiceUS: 1<<32 - 1,
			Payload: []byte("deadline exceeded")},
		{ID: 3, Status: protocol.Status(0xff)},
	}
	for _, want := range tests {
		var body []byte
		body = protocol.AppendReply(body, &want)
		body = protocol.AppendReplyParts(body, want.ID, want.Status, want.QueueUS, want.ServiceUS, want.Payload)
		for i := 0; i < 2; i++ {
			var got protocol.Reply
			var err error
			if body, err = protocol.NextReply(body, &got); err != nil {
				t.Fatalf("%+v: NextReply: %v", want, err)
			}
			if got.ID != want.ID || got.Status != want.Status || got.QueueUS != want.QueueUS ||
				got.ServiceUS != want.ServiceUS || !bytes.Equal(got.Payload, want.Payload) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		}
		if len(body) != 0 {
			t.Errorf("%d bytes left over", len(body))
		}
	}
}

func TestNextReplyErrors(t *testing.T) {
	for _, body := range [][]byte{nil, {0, 0, 0}, {0, 0, 0, 16}, append([]byte{0, 0, 0, 16}, make([]byte, 16)...)} {
		var r protocol.Reply
		if _, err := protocol.NextReply(body, &r); !errors.Is(err, protocol.ErrShort) {
			t.Errorf("NextReply(%x) = %v, want ErrShort", body, err)
		}
	}
}

func TestResultRoundTrip(t *testing.T) {
	tests := []protocol.Result{
		{},
		{ID: 17, Status: protocol.StatusOK, Payload: []byte("hello")},
		{ID: 18, Status: protocol.StatusWorkerError, Payload: []byte("Traceback\n...")},
		{ID: 1<<64 - 1, Status: protocol.Status(200)},
	}
	var body []byte
	for _, r := range tests {
		body = protocol.AppendResult(body, r.ID, r.Status, r.Payload)
	}
	for _, want := range tests {
		var got protocol.Result
		var err error
		if body, err = protocol.NextResult(body, &got); err != nil {
			t.Fatalf("NextResult: %v", err)
		}
		if got.ID != want.ID || got.Status != want.Status || !bytes.Equal(got.Payload, want.Payload) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
}

func TestNextResultErrors(t *testing.T) {
	for _, body := range [][]byte{nil, {0, 0, 0}, {0, 0, 0, 8}, append([]byte{0, 0, 0, 8}, make([]byte, 8)...)} {
		var r protocol.Result
		if _, err := protocol.NextResult(body, &r); !errors.Is(err, protocol.ErrShort) {
			t.Errorf("NextResult(%x) = %v, want ErrShort", body, err)
		}
	}
}

// ---- control bodies ----

func TestPongRoundTrip(t *testing.T) {
	tests := []protocol.Pong{
		{},
		{Nonce: 42, Instance: 0x1122334455667789, PID: 4242, UptimeMS: 3600000, Workers: 3,
			Queued: 7, InFlight: 12, Version: "0.1.0", Host: "broker-1"},
		{Nonce: 1<<64 - 1, Instance: 1<<64 - 1, PID: 1<<32 - 1, UptimeMS: 1<<64 - 1,
			Workers: 1<<32 - 1, Queued: 1<<32 - 1, InFlight: 1<<32 - 1, Draining: true,
			Version: strings.Repeat("v", 255), Host: strings.Repeat("h", 255)},
	}
	for _, want := range tests {
		b := protocol.AppendPong(nil, &want)
		got, err := protocol.DecodePong(b)
		if err != nil {
			t.Fatalf("DecodePong: %v", err)
		}
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
		for n := 0; n < len(b); n++ {
			if _, err := protocol.DecodePong(b[:n]); !errors.Is(err, protocol.ErrShort) {
				t.Fatalf("DecodePong of %d/%d bytes = %v, want ErrShort", n, len(b), err)
			}
		}
	}
}

func TestPongStateByte(t *testing.T) {
	b := protocol.AppendPong(nil, &protocol.Pong{Draining: true})
	const stateOff = 40
	if b[stateOff] != 1 {
		t.Fatalf("state byte at %d is %d, want 1", stateOff, b[stateOff])
	}
	// Only 1 means draining; other non-zero values decode as running (and so
	// re-encode as 0). Reported in the protocol review.
	b[stateOff] = 2
	p, err := protocol.DecodePong(b)
	if err != nil || p.Draining {
		t.Errorf("state 2: Draining=%v err=%v, want false, nil", p.Draining, err)
	}
}

func TestStr8Truncation(t *testing.T) {
	// Encoders cut str8 fields at 255 bytes rather than corrupting the body.
	long := strings.Repeat("x", 300)
	p, err := protocol.DecodePong(protocol.AppendPong(nil, &protocol.Pong{Version: long, Host: "h"}))
	if err != nil || p.Version != long[:255] || p.Host != "h" {
		t.Errorf("pong: %q %q %v", p.Version, p.Host, err)
	}
	rd, err := protocol.DecodeReady(protocol.AppendReady(nil, &protocol.Ready{Capacity: 1, Host: long, Services: []string{long}}))
	if err != nil || rd.Host != long[:255] || len(rd.Services) != 1 || rd.Services[0] != long[:255] {
		t.Errorf("ready: %+v %v", rd, err)
	}
}

func TestReadyRoundTrip(t *testing.T) {
	many := make([]string, 255)
	for i := range many {
		many[i] = strings.Repeat("s", i%7+1)
	}
	tests := []protocol.Ready{
		{Capacity: 1},
		{Capacity: 8, PID: 31337, Host: "worker-7", Version: "py-0.1", Services: []string{"echo", "sha256"}},
		{Capacity: 65535, PID: 1<<32 - 1, Services: many},
		{Capacity: 2, Services: []string{""}},
	}
	for _, want := range tests {
		got, err := protocol.DecodeReady(protocol.AppendReady(nil, &want))
		if err != nil {
			t.Fatalf("DecodeReady: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
	// More than 255 services: the encoder sends the first 255.
	rd, err := protocol.DecodeReady(protocol.AppendReady(nil, &protocol.Ready{Capacity: 1, Services: append(many, "extra")}))
	if err != nil || !reflect.DeepEqual(rd.Services, many) {
		t.Errorf("256 services: got %d, err %v", len(rd.Services), err)
	}
}

func TestReadyErrors(t *testing.T) {
	full := protocol.AppendReady(nil, &protocol.Ready{Capacity: 1, PID: 2, Host: "h", Version: "v", Services: []string{"a", "bb"}})
	for n := 0; n < len(full); n++ {
		if _, err := protocol.DecodeReady(full[:n]); !errors.Is(err, protocol.ErrShort) {
			t.Errorf("DecodeReady of %d/%d bytes = %v, want ErrShort", n, len(full), err)
		}
	}
}

func TestWelcomeRoundTrip(t *testing.T) {
	tests := []protocol.Welcome{
		{},
		{WorkerID: 5, HeartbeatMS: 500, Liveness: 4, MaxPayload: 8 << 20, Instance: 0x1122334455667789},
		{WorkerID: 1<<32 - 1, HeartbeatMS: 1<<32 - 1, Liveness: 255, MaxPayload: 1<<32 - 1, Instance: 1<<64 - 1},
	}
	for _, want := range tests {
		b := protocol.AppendWelcome(nil, &want)
		if len(b) != 21 {
			t.Errorf("WELCOME is %d bytes, want 21", len(b))
		}
		got, err := protocol.DecodeWelcome(b)
		if err != nil || got != want {
			t.Errorf("got %+v, %v; want %+v", got, err, want)
		}
		if _, err := protocol.DecodeWelcome(b[:20]); !errors.Is(err, protocol.ErrShort) {
			t.Errorf("20 bytes: err = %v, want ErrShort", err)
		}
	}
}

// TestTrailingBytesIgnored: fixed control bodies may grow at their end in a
// later minor revision; today's decoders ignore what follows their fields.
func TestTrailingBytesIgnored(t *testing.T) {
	extra := []byte("future fields")
	pong := protocol.Pong{Nonce: 1, Version: "v", Host: "h"}
	if got, err := protocol.DecodePong(append(protocol.AppendPong(nil, &pong), extra...)); err != nil || got != pong {
		t.Errorf("pong: %+v %v", got, err)
	}
	rd := protocol.Ready{Capacity: 3, Services: []string{"a"}}
	if got, err := protocol.DecodeReady(append(protocol.AppendReady(nil, &rd), extra...)); err != nil || !reflect.DeepEqual(got, rd) {
		t.Errorf("ready: %+v %v", got, err)
	}
	wl := protocol.Welcome{WorkerID: 1, HeartbeatMS: 2, Liveness: 3, MaxPayload: 4, Instance: 5}
	if got, err := protocol.DecodeWelcome(append(protocol.AppendWelcome(nil, &wl), extra...)); err != nil || got != wl {
		t.Errorf("welcome: %+v %v", got, err)
	}
}

func TestU64s(t *testing.T) {
	tests := []struct {
		name    string
		ids     []uint64
		body    []byte // used when ids is nil and body is set
		wantErr error
	}{
		{name: "none", ids: []uint64{}},
		{name: "one", ids: []uint64{42}},
		{name: "several", ids: []uint64{0, 1, 1<<64 - 1, 0x0102030405060708}},
		{name: "odd length", body: make([]byte, 12), wantErr: protocol.ErrShort},
		{name: "seven bytes", body: make([]byte, 7), wantErr: protocol.ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if tt.ids != nil {
				for _, id := range tt.ids {
					body = protocol.AppendU64(body, id)
				}
			}
			got := []uint64{}
			err := protocol.DecodeU64s(body, func(v uint64) { got = append(got, v) })
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tt.ids) {
				t.Errorf("got %v, want %v", got, tt.ids)
			}
		})
	}
	if b := protocol.AppendU64(nil, 0x0102030405060708); !bytes.Equal(b, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("AppendU64 is not big-endian: %x", b)
	}
}

func TestErrorBody(t *testing.T) {
	tests := []struct {
		st  protocol.Status
		msg string
	}{
		{protocol.StatusMalformed, "malformed cancel body"},
		{protocol.StatusUnsupportedVersion, "unsupported version: this broker speaks HOSEC1"},
		{protocol.StatusMalformed, ""},
	}
	for _, tt := range tests {
		st, msg, err := protocol.DecodeError(protocol.AppendError(nil, tt.st, tt.msg))
		if err != nil || st != tt.st || msg != tt.msg {
			t.Errorf("got %v %q %v, want %v %q", st, msg, err, tt.st, tt.msg)
		}
	}
	if _, _, err := protocol.DecodeError(nil); !errors.Is(err, protocol.ErrShort) {
		t.Errorf("empty ERROR: %v, want ErrShort", err)
	}
}

func TestStatusString(t *testing.T) {
	tests := map[protocol.Status]string{
		protocol.StatusOK: "ok", protocol.StatusMalformed: "malformed",
		protocol.StatusUnknownService: "unknown service", protocol.StatusTooLarge: "too large",
		protocol.StatusBusy: "busy", protocol.StatusNoWorker: "no worker",
		protocol.StatusWorkerError: "worker error", protocol.StatusWorkerLost: "worker lost",
		protocol.StatusDeadline: "deadline exceeded", protocol.StatusUnsupportedVersion: "unsupported version",
		protocol.StatusShuttingDown: "shutting down", protocol.Status(11): "status(11)",
		protocol.Status(255): "status(255)",
	}
	for st, want := range tests {
		if got := st.String(); got != want {
			t.Errorf("Status(%d).String() = %q, want %q", byte(st), got, want)
		}
	}
}

// ---- fuzzing ----
//
// Each target is seeded from the test vectors (valid and invalid bodies of
// its command) and checks that the decoder never panics, fails only with
// the package's errors, and that what it accepts re-encodes to the same
// bytes wherever the format is canonical.

// seedBodies adds the body frame of every vector, valid or invalid, whose
// header parses to one of cmds in dialect d.
func seedBodies(f *testing.F, d protocol.Dialect, cmds ...protocol.Command) {
	f.Helper()
	vf := loadVectors(f)
	add := func(dialect string, hexFrames []string, name string) {
		if dialectOf(f, dialect) != d {
			return
		}
		fr := frames(f, name, hexFrames)
		cmd, err := protocol.ParseHeader(fr[0], d)
		if err != nil {
			return
		}
		for _, c := range cmds {
			if cmd == c {
				f.Add(fr[1])
			}
		}
	}
	for _, v := range vf.Vectors {
		add(v.Dialect, v.Frames, v.Name)
	}
	for _, v := range vf.Invalid {
		add(v.Dialect, v.Frames, v.Name)
	}
}

func FuzzNextJob(f *testing.F) {
	seedBodies(f, protocol.Client, protocol.CmdRequest)
	seedBodies(f, protocol.Worker, protocol.CmdJob)
	f.Fuzz(func(t *testing.T, body []byte) {
		var j protocol.Job
		for len(body) > 0 {
			rest, err := protocol.NextJob(body, &j)
			if err != nil {
				if !errors.Is(err, protocol.ErrShort) && !errors.Is(err, protocol.ErrBadHeaders) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			rec := body[:len(body)-len(rest)]
			if enc := protocol.AppendJob(nil, &j); !bytes.Equal(enc, rec) {
				t.Fatalf("re-encoded %x, decoded from %x", enc, rec)
			}
			if err := protocol.CheckHeaders(j.Headers); err != nil {
				t.Fatalf("accepted a record with bad headers: %v", err)
			}
			body = rest
		}
	})
}

func FuzzNextReply(f *testing.F) {
	seedBodies(f, protocol.Client, protocol.CmdReply)
	f.Fuzz(func(t *testing.T, body []byte) {
		var r protocol.Reply
		for len(body) > 0 {
			rest, err := protocol.NextReply(body, &r)
			if err != nil {
				if !errors.Is(err, protocol.ErrShort) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			rec := body[:len(body)-len(rest)]
			if enc := protocol.AppendReply(nil, &r); !bytes.Equal(enc, rec) {
				t.Fatalf("re-encoded %x, decoded from %x", enc, rec)
			}
			body = rest
		}
	})
}

func FuzzNextResult(f *testing.F) {
	seedBodies(f, protocol.Worker, protocol.CmdResult)
	f.Fuzz(func(t *testing.T, body []byte) {
		var r protocol.Result
		for len(body) > 0 {
			rest, err := protocol.NextResult(body, &r)
			if err != nil {
				if !errors.Is(err, protocol.ErrShort) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			rec := body[:len(body)-len(rest)]
			if enc := protocol.AppendResult(nil, r.ID, r.Status, r.Payload); !bytes.Equal(enc, rec) {
				t.Fatalf("re-encoded %x, decoded from %x", enc, rec)
			}
			body = rest
		}
	})
}

func FuzzDecodeReady(f *testing.F) {
	seedBodies(f, protocol.Worker, protocol.CmdReady)
	f.Fuzz(func(t *testing.T, body []byte) {
		rd, err := protocol.DecodeReady(body)
		if err != nil {
			if !errors.Is(err, protocol.ErrShort) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		// Trailing bytes are ignored, so the encoding is canonical up to the
		// last field.
		if enc := protocol.AppendReady(nil, &rd); !bytes.HasPrefix(body, enc) {
			t.Fatalf("re-encoded %x, not a prefix of %x", enc, body)
		}
	})
}

func FuzzDecodeWelcome(f *testing.F) {
	seedBodies(f, protocol.Worker, protocol.CmdWelcome)
	f.Fuzz(func(t *testing.T, body []byte) {
		wl, err := protocol.DecodeWelcome(body)
		if (err == nil) != (len(body) >= 21) {
			t.Fatalf("%d bytes: err = %v", len(body), err)
		}
		if err != nil {
			if !errors.Is(err, protocol.ErrShort) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if enc := protocol.AppendWelcome(nil, &wl); !bytes.Equal(enc, body[:21]) {
			t.Fatalf("re-encoded %x, decoded from %x", enc, body[:21])
		}
	})
}

func FuzzDecodePong(f *testing.F) {
	seedBodies(f, protocol.Client, protocol.CmdPong)
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := protocol.DecodePong(body)
		if err != nil {
			if !errors.Is(err, protocol.ErrShort) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		// Canonical up to the last field, except the state byte (offset
		// 40): values other than 0 and 1 decode as running.
		want := bytes.Clone(body)
		if want[40] > 1 {
			want[40] = 0
		}
		if enc := protocol.AppendPong(nil, &p); !bytes.HasPrefix(want, enc) {
			t.Fatalf("re-encoded %x, not a prefix of %x", enc, want)
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	vf := loadVectors(f)
	for _, v := range vf.Vectors {
		f.Add(frames(f, v.Name, v.Frames)[0], v.Dialect == "worker")
	}
	for _, v := range vf.Invalid {
		f.Add(frames(f, v.Name, v.Frames)[0], v.Dialect == "worker")
	}
	f.Fuzz(func(t *testing.T, frame []byte, worker bool) {
		d, tag := protocol.Client, protocol.ClientTag
		if worker {
			d, tag = protocol.Worker, protocol.WorkerTag
		}
		cmd, err := protocol.ParseHeader(frame, d)
		// The rule of PROTOCOL.md section 3.1, written out independently.
		switch {
		case len(frame) < 7 || string(frame[:5]) != tag[:5]:
			if !errors.Is(err, protocol.ErrBadTag) {
				t.Fatalf("%q: err = %v, want ErrBadTag", frame, err)
			}
		case frame[5] != tag[5]:
			if !errors.Is(err, protocol.ErrVersion) {
				t.Fatalf("%q: err = %v, want ErrVersion", frame, err)
			}
		default:
			if err != nil {
				t.Fatalf("%q: err = %v", frame, err)
			}
			if h := protocol.Header(d, cmd); !bytes.Equal(h, frame[:7]) {
				t.Fatalf("Header(%c, %#x) = %q, frame %q", d, cmd, h, frame)
			}
		}
	})
}

func FuzzDecodeU64s(f *testing.F) {
	seedBodies(f, protocol.Client, protocol.CmdPing, protocol.CmdCancel)
	f.Fuzz(func(t *testing.T, body []byte) {
		var enc []byte
		err := protocol.DecodeU64s(body, func(v uint64) { enc = protocol.AppendU64(enc, v) })
		if (err == nil) != (len(body)%8 == 0) {
			t.Fatalf("%d bytes: err = %v", len(body), err)
		}
		if err != nil {
			if !errors.Is(err, protocol.ErrShort) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !bytes.Equal(enc, body) && len(body) > 0 {
			t.Fatalf("re-encoded %x, decoded from %x", enc, body)
		}
	})
}

func FuzzCheckHeaders(f *testing.F) {
	vf := loadVectors(f)
	for _, v := range vf.Vectors {
		if v.Command != "REQUEST" && v.Command != "JOB" {
			continue
		}
		var batch jobBatch
		if err := parseFields(v.Fields, &batch); err != nil {
			f.Fatal(err)
		}
		for _, r := range batch.Records {
			b, err := r.Headers.block()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	for _, s := range []string{"\x05ab", "\x01k\x00\x09abc", "\x01k\x00\x01v\x09", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, block []byte) {
		err := protocol.CheckHeaders(block)
		m, derr := protocol.DecodeHeaders(block)
		if (err == nil) != (derr == nil) {
			t.Fatalf("CheckHeaders = %v but DecodeHeaders = %v", err, derr)
		}
		if err != nil {
			if !errors.Is(err, protocol.ErrBadHeaders) || !errors.Is(derr, protocol.ErrBadHeaders) {
				t.Fatalf("unexpected errors %v, %v", err, derr)
			}
			return
		}
		var enc []byte
		first := map[string]string{} // the first value of a repeated key wins
		for b := block; len(b) > 0; {
			k, v, rest, err := protocol.NextHeader(b)
			if err != nil {
				t.Fatalf("CheckHeaders accepted what NextHeader refuses: %v", err)
			}
			enc = protocol.AppendHeader(enc, string(k), string(v))
			if _, dup := first[string(k)]; !dup {
				first[string(k)] = string(v)
			}
			b = rest
		}
		if !bytes.Equal(enc, block) {
			t.Fatalf("re-encoded %x, decoded from %x", enc, block)
		}
		if len(block) == 0 {
			if m != nil {
				t.Fatalf("empty block decoded to %v, want nil", m)
			}
		} else if !reflect.DeepEqual(m, first) {
			t.Fatalf("DecodeHeaders = %q, want %q", m, first)
		}
	})
}

func FuzzDecodeError(f *testing.F) {
	seedBodies(f, protocol.Client, protocol.CmdError)
	f.Fuzz(func(t *testing.T, body []byte) {
		st, msg, err := protocol.DecodeError(body)
		if (err == nil) != (len(body) > 0) {
			t.Fatalf("%d bytes: err = %v", len(body), err)
		}
		if err == nil && !bytes.Equal(protocol.AppendError(nil, st, msg), body) {
			t.Fatalf("re-encoding differs for %x", body)
		}
	})
}
