package protocol_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"testing"

	"github.com/hose-project/hose/protocol"
)

// vectorsPath is testdata/vectors/vectors.json, written by
// testdata/vectors/gen_vectors.py and described in docs/PROTOCOL.md
// ("Test vectors").
const vectorsPath = "../testdata/vectors/vectors.json"

type vectorFile struct {
	Format        string                    `json:"format"`
	FormatVersion int                       `json:"format_version"`
	Tags          map[string]string         `json:"tags"`
	Commands      map[string]map[string]int `json:"commands"`
	Statuses      map[string]string         `json:"statuses"`
	Errors        map[string]string         `json:"errors"`
	Vectors       []vector                  `json:"vectors"`
	Invalid       []invalidVector           `json:"invalid"`
}

type vector struct {
	Name        string          `json:"name"`
	Dialect     string          `json:"dialect"`
	Direction   string          `json:"direction"`
	Command     string          `json:"command"`
	Description string          `json:"description"`
	Frames      []string        `json:"frames"`
	Fields      json.RawMessage `json:"fields"`
}

type invalidVector struct {
	Name               string   `json:"name"`
	Dialect            string   `json:"dialect"`
	Direction          string   `json:"direction"`
	Description        string   `json:"description"`
	Frames             []string `json:"frames"`
	Error              string   `json:"error"`
	RecordsBeforeError *int     `json:"records_before_error"`
}

// The decoded fields of each command, as the JSON file spells them.

type bytesField struct {
	Hex  string  `json:"hex"`
	Text *string `json:"text,omitempty"`
}

type headerPair struct {
	Key   bytesField `json:"key"`
	Value bytesField `json:"value"`
}

type headersField struct {
	Hex   string       `json:"hex"`
	Pairs []headerPair `json:"pairs"`
}

type jobFields struct {
	ID         uint64       `json:"id"`
	TimeoutMS  uint32       `json:"timeout_ms"`
	Flags      uint8        `json:"flags"`
	Idempotent bool         `json:"idempotent"`
	Service    bytesField   `json:"service"`
	Headers    headersField `json:"headers"`
	Payload    bytesField   `json:"payload"`
}

type jobBatch struct {
	Records []jobFields `json:"records"`
}

type replyFields struct {
	ID         uint64     `json:"id"`
	Status     uint8      `json:"status"`
	StatusName string     `json:"status_name"`
	QueueUS    uint32     `json:"queue_us"`
	ServiceUS  uint32     `json:"service_us"`
	Payload    bytesField `json:"payload"`
}

type replyBatch struct {
	Records []replyFields `json:"records"`
}

type resultFields struct {
	ID         uint64     `json:"id"`
	Status     uint8      `json:"status"`
	StatusName string     `json:"status_name"`
	Payload    bytesField `json:"payload"`
}

type resultBatch struct {
	Records []resultFields `json:"records"`
}

type pingFields struct {
	Nonce uint64 `json:"nonce"`
}

type pongFields struct {
	Nonce    uint64 `json:"nonce"`
	Instance uint64 `json:"instance"`
	PID      uint32 `json:"pid"`
	UptimeMS uint64 `json:"uptime_ms"`
	Workers  uint32 `json:"workers"`
	Queued   uint32 `json:"queued"`
	InFlight uint32 `json:"inflight"`
	State    uint8  `json:"state"`
	Draining bool   `json:"draining"`
	Version  string `json:"version"`
	Hostname string `json:"hostname"`
}

type cancelFields struct {
	IDs []uint64 `json:"ids"`
}

type errorFields struct {
	Status     uint8  `json:"status"`
	StatusName string `json:"status_name"`
	Message    string `json:"message"`
}

type readyFields struct {
	Capacity uint16   `json:"capacity"`
	PID      uint32   `json:"pid"`
	Hostname string   `json:"hostname"`
	Version  string   `json:"version"`
	Services []string `json:"services"`
}

type welcomeFields struct {
	WorkerID    uint32 `json:"worker_id"`
	HeartbeatMS uint32 `json:"heartbeat_ms"`
	Liveness    uint8  `json:"liveness"`
	MaxPayload  uint32 `json:"max_payload"`
	Instance    uint64 `json:"instance"`
}

type emptyFields struct{}

type disconnectFields struct {
	Reason string `json:"reason"`
}

// loadVectors reads and parses the vector file.
func loadVectors(tb testing.TB) *vectorFile {
	tb.Helper()
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		tb.Fatalf("read vectors: %v", err)
	}
	var vf vectorFile
	if err := json.Unmarshal(data, &vf); err != nil {
		tb.Fatalf("parse %s: %v", vectorsPath, err)
	}
	return &vf
}

// frames decodes the hex frames of a vector.
func frames(tb testing.TB, name string, hexFrames []string) [][]byte {
	tb.Helper()
	if len(hexFrames) < 2 {
		tb.Fatalf("%s: %d frames, want header and body", name, len(hexFrames))
	}
	out := make([][]byte, len(hexFrames))
	for i, h := range hexFrames {
		b, err := hex.DecodeString(h)
		if err != nil {
			tb.Fatalf("%s: frame %d: %v", name, i, err)
		}
		out[i] = b
	}
	return out
}

func dialectOf(tb testing.TB, name string) protocol.Dialect {
	tb.Helper()
	switch name {
	case "client":
		return protocol.Client
	case "worker":
		return protocol.Worker
	}
	tb.Fatalf("unknown dialect %q", name)
	return 0
}

// commandNames maps each dialect's command names to the Go constants.
var commandNames = map[protocol.Dialect]map[string]protocol.Command{
	protocol.Client: {
		"REQUEST": protocol.CmdRequest, "REPLY": protocol.CmdReply, "PING": protocol.CmdPing,
		"PONG": protocol.CmdPong, "CANCEL": protocol.CmdCancel, "ERROR": protocol.CmdError,
	},
	protocol.Worker: {
		"READY": protocol.CmdReady, "WELCOME": protocol.CmdWelcome, "JOB": protocol.CmdJob,
		"RESULT": protocol.CmdResult, "HEARTBEAT": protocol.CmdHeartbeat,
		"DRAIN": protocol.CmdDrain, "DISCONNECT": protocol.CmdDisconnect,
	},
}

// errorNames maps the file's error names to the package's errors.
var errorNames = map[string]error{
	"truncated":           protocol.ErrShort,
	"bad_tag":             protocol.ErrBadTag,
	"unsupported_version": protocol.ErrVersion,
	"bad_headers":         protocol.ErrBadHeaders,
}

func mkBytes(b []byte) bytesField {
	f := bytesField{Hex: hex.EncodeToString(b)}
	printable := true
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			printable = false
			break
		}
	}
	if printable {
		s := string(b)
		f.Text = &s
	}
	return f
}

func (f bytesField) bytes() ([]byte, error) {
	b, err := hex.DecodeString(f.Hex)
	if err != nil {
		return nil, err
	}
	if f.Text != nil && *f.Text != string(b) {
		return nil, fmt.Errorf("text %q does not match hex %s", *f.Text, f.Hex)
	}
	return b, nil
}

func mkHeaders(block []byte) (headersField, error) {
	h := headersField{Hex: hex.EncodeToString(block), Pairs: []headerPair{}}
	for b := block; len(b) > 0; {
		k, v, rest, err := protocol.NextHeader(b)
		if err != nil {
			return h, err
		}
		h.Pairs = append(h.Pairs, headerPair{Key: mkBytes(k), Value: mkBytes(v)})
		b = rest
	}
	return h, nil
}

// block encodes the pairs with AppendHeader and checks them against hex.
func (h headersField) block() ([]byte, error) {
	var out []byte
	for _, p := range h.Pairs {
		k, err := p.Key.bytes()
		if err != nil {
			return nil, err
		}
		v, err := p.Value.bytes()
		if err != nil {
			return nil, err
		}
		out = protocol.AppendHeader(out, string(k), string(v))
	}
	if got := hex.EncodeToString(out); got != h.Hex {
		return nil, fmt.Errorf("pairs encode to %s, hex says %s", got, h.Hex)
	}
	return out, nil
}

// codec ties a command to its decoder and encoder. decode returns the
// fields the Go decoder found (as far as it got), the number of records
// decoded (batches) and the first error; encode builds the body from the
// fields of the file.
type codec struct {
	fields func() any
	decode func(body []byte) (any, int, error)
	encode func(fields any) ([]byte, error)
}

func jobCodec() codec {
	return codec{
		fields: func() any { return new(jobBatch) },
		decode: func(body []byte) (any, int, error) {
			out := &jobBatch{Records: []jobFields{}}
			var j protocol.Job
			for len(body) > 0 {
				var err error
				if body, err = protocol.NextJob(body, &j); err != nil {
					return out, len(out.Records), err
				}
				h, err := mkHeaders(j.Headers)
				if err != nil {
					return out, len(out.Records), err
				}
				out.Records = append(out.Records, jobFields{
					ID: j.ID, TimeoutMS: j.TimeoutMS, Flags: j.Flags,
					Idempotent: j.Flags&protocol.FlagIdempotent != 0,
					Service:    mkBytes(j.Service), Headers: h, Payload: mkBytes(j.Payload),
				})
			}
			return out, len(out.Records), nil
		},
		encode: func(fields any) ([]byte, error) {
			var out []byte
			for _, r := range fields.(*jobBatch).Records {
				svc, err := r.Service.bytes()
				if err != nil {
					return nil, err
				}
				hdrs, err := r.Headers.block()
				if err != nil {
					return nil, err
				}
				payload, err := r.Payload.bytes()
				if err != nil {
					return nil, err
				}
				out = protocol.AppendJob(out, &protocol.Job{ID: r.ID, TimeoutMS: r.TimeoutMS,
					Flags: r.Flags, Service: svc, Headers: hdrs, Payload: payload})
			}
			return out, nil
		},
	}
}

func replyCodec() codec {
	return codec{
		fields: func() any { return new(replyBatch) },
		decode: func(body []byte) (any, int, error) {
			out := &replyBatch{Records: []replyFields{}}
			var r protocol.Reply
			for len(body) > 0 {
				var err error
				if body, err = protocol.NextReply(body, &r); err != nil {
					return out, len(out.Records), err
				}
				out.Records = append(out.Records, replyFields{
					ID: r.ID, Status: uint8(r.Status), StatusName: r.Status.String(),
					QueueUS: r.QueueUS, ServiceUS: r.ServiceUS, Payload: mkBytes(r.Payload),
				})
			}
			return out, len(out.Records), nil
		},
		encode: func(fields any) ([]byte, error) {
			var out []byte
			for _, r := range fields.(*replyBatch).Records {
				payload, err := r.Payload.bytes()
				if err != nil {
					return nil, err
				}
				out = protocol.AppendReply(out, &protocol.Reply{ID: r.ID, Status: protocol.Status(r.Status),
					QueueUS: r.QueueUS, ServiceUS: r.ServiceUS, Payload: payload})
			}
			return out, nil
		},
	}
}

func resultCodec() codec {
	return codec{
		fields: func() any { return new(resultBatch) },
		decode: func(body []byte) (any, int, error) {
			out := &resultBatch{Records: []resultFields{}}
			var r protocol.Result
			for len(body) > 0 {
				var err error
				if body, err = protocol.NextResult(body, &r); err != nil {
					return out, len(out.Records), err
				}
				out.Records = append(out.Records, resultFields{
					ID: r.ID, Status: uint8(r.Status), StatusName: r.Status.String(), Payload: mkBytes(r.Payload),
				})
			}
			return out, len(out.Records), nil
		},
		encode: func(fields any) ([]byte, error) {
			var out []byte
			for _, r := range fields.(*resultBatch).Records {
				payload, err := r.Payload.bytes()
				if err != nil {
					return nil, err
				}
				out = protocol.AppendResult(out, r.ID, protocol.Status(r.Status), payload)
			}
			return out, nil
		},
	}
}

func u64sOf(body []byte) ([]uint64, error) {
	ids := []uint64{}
	err := protocol.DecodeU64s(body, func(v uint64) { ids = append(ids, v) })
	return ids, err
}

var codecs = map[protocol.Dialect]map[protocol.Command]codec{
	protocol.Client: {
		protocol.CmdRequest: jobCodec(),
		protocol.CmdReply:   replyCodec(),
		protocol.CmdPing: {
			fields: func() any { return new(pingFields) },
			decode: func(body []byte) (any, int, error) {
				ids, err := u64sOf(body)
				if err != nil {
					return nil, 0, err
				}
				if len(ids) != 1 {
					return nil, 0, fmt.Errorf("PING body holds %d u64, want 1", len(ids))
				}
				return &pingFields{Nonce: ids[0]}, 0, nil
			},
			encode: func(fields any) ([]byte, error) {
				return protocol.AppendU64(nil, fields.(*pingFields).Nonce), nil
			},
		},
		protocol.CmdPong: {
			fields: func() any { return new(pongFields) },
			decode: func(body []byte) (any, int, error) {
				p, err := protocol.DecodePong(body)
				if err != nil {
					return nil, 0, err
				}
				var st uint8
				if p.Draining {
					st = 1
				}
				return &pongFields{Nonce: p.Nonce, Instance: p.Instance, PID: p.PID, UptimeMS: p.UptimeMS,
					Workers: p.Workers, Queued: p.Queued, InFlight: p.InFlight, State: st,
					Draining: p.Draining, Version: p.Version, Hostname: p.Host}, 0, nil
			},
			encode: func(fields any) ([]byte, error) {
				f := fields.(*pongFields)
				if f.State > 1 {
					return nil, fmt.Errorf("state %d: the Go Pong only knows 0 and 1", f.State)
				}
				return protocol.AppendPong(nil, &protocol.Pong{Nonce: f.Nonce, Instance: f.Instance,
					PID: f.PID, UptimeMS: f.UptimeMS, Workers: f.Workers, Queued: f.Queued,
					InFlight: f.InFlight, Draining: f.State == 1, Version: f.Version, Host: f.Hostname}), nil
			},
		},
		protocol.CmdCancel: {
			fields: func() any { return new(cancelFields) },
			decode: func(body []byte) (any, int, error) {
				ids, err := u64sOf(body)
				if err != nil {
					return nil, 0, err
				}
				return &cancelFields{IDs: ids}, 0, nil
			},
			encode: func(fields any) ([]byte, error) {
				var out []byte
				for _, id := range fields.(*cancelFields).IDs {
					out = protocol.AppendU64(out, id)
				}
				return out, nil
			},
		},
		protocol.CmdError: {
			fields: func() any { return new(errorFields) },
			decode: func(body []byte) (any, int, error) {
				st, msg, err := protocol.DecodeError(body)
				if err != nil {
					return nil, 0, err
				}
				return &errorFields{Status: uint8(st), StatusName: st.String(), Message: msg}, 0, nil
			},
			encode: func(fields any) ([]byte, error) {
				f := fields.(*errorFields)
				return protocol.AppendError(nil, protocol.Status(f.Status), f.Message), nil
			},
		},
	},
	protocol.Worker: {
		protocol.CmdReady: {
			fields: func() any { return new(readyFields) },
			decode: func(body []byte) (any, int, error) {
				rd, err := protocol.DecodeReady(body)
				if err != nil {
					return nil, 0, err
				}
				svcs := append([]string{}, rd.Services...)
				return &readyFields{Capacity: rd.Capacity, PID: rd.PID, Hostname: rd.Host,
					Version: rd.Version, Services: svcs}, 0, nil
			},
			encode: func(fields any) ([]byte, error) {
				f := fields.(*readyFields)
				return protocol.AppendReady(nil, &protocol.Ready{Capacity: f.Capacity, PID: f.PID,
					Host: f.Hostname, Version: f.Version, Services: f.Services}), nil
			},
		},
		protocol.CmdWelcome: {
			fields: func() any { return new(welcomeFields) },
			decode: func(body []byte) (any, int, error) {
				w, err := protocol.DecodeWelcome(body)
				if err != nil {
					return nil, 0, err
				}
				return &welcomeFields{WorkerID: w.WorkerID, HeartbeatMS: w.HeartbeatMS,
					Liveness: w.Liveness, MaxPayload: w.MaxPayload, Instance: w.Instance}, 0, nil
			},
			encode: func(fields any) ([]byte, error) {
				f := fields.(*welcomeFields)
				return protocol.AppendWelcome(nil, &protocol.Welcome{WorkerID: f.WorkerID,
					HeartbeatMS: f.HeartbeatMS, Liveness: f.Liveness, MaxPayload: f.MaxPayload,
					Instance: f.Instance}), nil
			},
		},
		protocol.CmdJob:       jobCodec(),
		protocol.CmdResult:    resultCodec(),
		protocol.CmdHeartbeat: emptyCodec(),
		protocol.CmdDrain:     emptyCodec(),
		protocol.CmdDisconnect: {
			fields: func() any { return new(disconnectFields) },
			decode: func(body []byte) (any, int, error) {
				return &disconnectFields{Reason: string(body)}, 0, nil
			},
			encode: func(fields any) ([]byte, error) {
				return []byte(fields.(*disconnectFields).Reason), nil
			},
		},
	},
}

func emptyCodec() codec {
	return codec{
		fields: func() any { return new(emptyFields) },
		decode: func(body []byte) (any, int, error) {
			if len(body) != 0 {
				return nil, 0, fmt.Errorf("body of %d bytes, want empty", len(body))
			}
			return &emptyFields{}, 0, nil
		},
		encode: func(any) ([]byte, error) { return nil, nil },
	}
}

// parseFields decodes a vector's fields strictly into the command's type.
func parseFields(raw json.RawMessage, into any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

// TestVectorTables checks the file's tags, command and status tables and
// error names against the package.
func TestVectorTables(t *testing.T) {
	vf := loadVectors(t)
	if vf.Format != "hose-protocol-vectors" || vf.FormatVersion != 1 {
		t.Fatalf("format %q version %d", vf.Format, vf.FormatVersion)
	}
	if vf.Tags["client"] != protocol.ClientTag || vf.Tags["worker"] != protocol.WorkerTag || len(vf.Tags) != 2 {
		t.Errorf("tags %v", vf.Tags)
	}
	for d, name := range map[protocol.Dialect]string{protocol.Client: "client", protocol.Worker: "worker"} {
		file := vf.Commands[name]
		if len(file) != len(commandNames[d]) {
			t.Errorf("%s: file lists %d commands, package %d", name, len(file), len(commandNames[d]))
		}
		for cmd, b := range file {
			if c, ok := commandNames[d][cmd]; !ok || int(c) != b {
				t.Errorf("%s %s: file says %#x, package %#x (known %v)", name, cmd, b, c, ok)
			}
		}
	}
	if len(vf.Statuses) != int(protocol.StatusShuttingDown)+1 {
		t.Errorf("file lists %d statuses", len(vf.Statuses))
	}
	for code, name := range vf.Statuses {
		n, err := strconv.Atoi(code)
		if err != nil || n < 0 || n > 255 {
			t.Errorf("status code %q", code)
			continue
		}
		if got := protocol.Status(n).String(); got != name {
			t.Errorf("status %d: file says %q, package %q", n, name, got)
		}
	}
	for name := range vf.Errors {
		if errorNames[name] == nil {
			t.Errorf("error %q has no Go counterpart", name)
		}
	}
	if len(vf.Errors) != len(errorNames) {
		t.Errorf("file names %d errors, test knows %d", len(vf.Errors), len(errorNames))
	}
}

// TestVectors decodes every valid vector, compares with its fields, and
// re-encodes the fields byte for byte.
func TestVectors(t *testing.T) {
	vf := loadVectors(t)
	seen := map[string]bool{}
	for _, v := range vf.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			if seen[v.Name] {
				t.Fatalf("duplicate vector name")
			}
			seen[v.Name] = true
			if v.Description == "" || v.Direction == "" {
				t.Errorf("missing description or direction")
			}
			d := dialectOf(t, v.Dialect)
			fr := frames(t, v.Name, v.Frames)
			want, ok := commandNames[d][v.Command]
			if !ok {
				t.Fatalf("unknown %s command %q", v.Dialect, v.Command)
			}
			cmd, err := protocol.ParseHeader(fr[0], d)
			if err != nil {
				t.Fatalf("ParseHeader: %v", err)
			}
			if cmd != want {
				t.Fatalf("command %#x, want %s (%#x)", cmd, v.Command, want)
			}
			if h := protocol.Header(d, cmd); !bytes.Equal(h, fr[0]) {
				t.Errorf("Header = %x, frame 0 is %x", h, fr[0])
			}
			c := codecs[d][cmd]
			wantFields := c.fields()
			if err := parseFields(v.Fields, wantFields); err != nil {
				t.Fatalf("fields: %v", err)
			}
			got, _, err := c.decode(fr[1])
			if err != nil {
				t.Fatalf("decode body: %v", err)
			}
			if !reflect.DeepEqual(got, wantFields) {
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(wantFields)
				t.Errorf("decoded fields differ\n got: %s\nwant: %s", gj, wj)
			}
			body, err := c.encode(wantFields)
			if err != nil {
				t.Fatalf("encode fields: %v", err)
			}
			if !bytes.Equal(body, fr[1]) {
				t.Errorf("re-encoded body differs\n got: %x\nwant: %x", body, fr[1])
			}
		})
	}
	// Every command of both dialects has at least one vector.
	for d, cmds := range commandNames {
		for name := range cmds {
			found := false
			for _, v := range vf.Vectors {
				if dialectOf(t, v.Dialect) == d && v.Command == name {
					found = true
				}
			}
			if !found {
				t.Errorf("no vector for %c %s", d, name)
			}
		}
	}
}

// TestInvalidVectors checks that every invalid vector fails to decode with
// its named error, after the stated number of good records.
func TestInvalidVectors(t *testing.T) {
	vf := loadVectors(t)
	for _, v := range vf.Invalid {
		t.Run(v.Name, func(t *testing.T) {
			want := errorNames[v.Error]
			if want == nil {
				t.Fatalf("unknown error name %q", v.Error)
			}
			if v.Description == "" || v.Direction == "" {
				t.Errorf("missing description or direction")
			}
			d := dialectOf(t, v.Dialect)
			fr := frames(t, v.Name, v.Frames)
			cmd, err := protocol.ParseHeader(fr[0], d)
			if err != nil {
				if !errors.Is(err, want) {
					t.Fatalf("ParseHeader: %v, want %v", err, want)
				}
				if v.RecordsBeforeError != nil {
					t.Errorf("records_before_error set on a header error")
				}
				return
			}
			c, ok := codecs[d][cmd]
			if !ok {
				t.Fatalf("no codec for command %#x", cmd)
			}
			_, n, err := c.decode(fr[1])
			if !errors.Is(err, want) {
				t.Fatalf("decode body: %v, want %v", err, want)
			}
			if v.RecordsBeforeError != nil && n != *v.RecordsBeforeError {
				t.Errorf("%d records before the error, want %d", n, *v.RecordsBeforeError)
			}
		})
	}
}
