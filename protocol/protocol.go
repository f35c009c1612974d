// Package protocol owns hose's wire format: the header frame that tags every
// message with its dialect, version and command, and the binary records that
// the bodies carry. It only encodes and decodes bytes; it owns no sockets.
//
// Every hose message is two ZeroMQ frames (a ROUTER adds the peer identity in
// front of them):
//
//	frame 0: header, 7 bytes: "HOSEC1" (client dialect) or "HOSEW1" (worker
//	         dialect), then one command byte
//	frame 1: body, command specific, possibly empty
//
// Further frames are ignored, so later minor versions may append them. Jobs
// travel in batches: one REQUEST, REPLY, JOB or RESULT body holds one or more
// length-prefixed records, so a busy peer pays the per-message cost of ZeroMQ
// once per batch rather than once per job. All integers are big-endian.
//
// docs/PROTOCOL.md is the normative description; testdata/vectors holds
// byte-exact examples that the tests decode and re-encode.
package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Protocol tags. The final digit is the major version: a peer that sees a
// known prefix with another digit answers "unsupported version".
const (
	ClientTag = "HOSEC1"
	WorkerTag = "HOSEW1"
	// HeaderLen is the length of a header frame: tag + command byte.
	HeaderLen    = len(ClientTag) + 1
	tagPrefixLen = len(ClientTag) - 1 // "HOSEC" / "HOSEW"
)

// Version is the software version reported by brokers and workers.
const Version = "0.1.0"

// Dialect tells which side of the broker a message belongs to.
type Dialect byte

// Dialects.
const (
	Client Dialect = 'C'
	Worker Dialect = 'W'
)

// Command is the command byte of a header frame. Values are never reused.
type Command byte

// Client dialect commands (client DEALER <-> broker frontend ROUTER).
const (
	CmdRequest Command = 0x01 // C->B: batch of request records
	CmdReply   Command = 0x02 // B->C: batch of reply records
	CmdPing    Command = 0x03 // C->B: u64 nonce; also the client's heartbeat
	CmdPong    Command = 0x04 // B->C: broker information
	CmdCancel  Command = 0x05 // C->B: u64 request ids the caller gave up on
	CmdError   Command = 0x06 // B->C: message-level error: u8 status + text
)

// Worker dialect commands (worker DEALER <-> broker backend ROUTER).
const (
	CmdReady      Command = 0x01 // W->B: registration
	CmdWelcome    Command = 0x02 // B->W: registration accepted, heartbeat settings
	CmdJob        Command = 0x03 // B->W: batch of job records
	CmdResult     Command = 0x04 // W->B: batch of result records
	CmdHeartbeat  Command = 0x05 // both ways, empty body
	CmdDrain      Command = 0x06 // W->B: send me no more jobs; B->W: acknowledged, no more will come
	CmdDisconnect Command = 0x07 // both ways: forget me / I do not know you
)

// Status is the outcome carried by reply and result records and by ERROR.
type Status byte

// Statuses. Values are never reused.
const (
	StatusOK                 Status = 0
	StatusMalformed          Status = 1
	StatusUnknownService     Status = 2
	StatusTooLarge           Status = 3
	StatusBusy               Status = 4
	StatusNoWorker           Status = 5
	StatusWorkerError        Status = 6
	StatusWorkerLost         Status = 7
	StatusDeadline           Status = 8
	StatusUnsupportedVersion Status = 9
	StatusShuttingDown       Status = 10
)

var statusNames = [...]string{
	"ok", "malformed", "unknown service", "too large", "busy", "no worker",
	"worker error", "worker lost", "deadline exceeded", "unsupported version",
	"shutting down",
}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", byte(s))
}

// Flags of a request or job record.
const (
	// FlagIdempotent lets the broker run the job again on another worker when
	// the first one is lost mid-job and time remains.
	FlagIdempotent byte = 1 << 0
)

// DefaultService is the service used when a request names none.
const DefaultService = "default"

// Limits of the encoding itself.
const (
	MaxServiceLen = 255
	MaxHeadersLen = 65535
)

// Decoding errors.
var (
	ErrShort      = errors.New("protocol: truncated data")
	ErrBadTag     = errors.New("protocol: not a hose header frame")
	ErrVersion    = errors.New("protocol: unsupported protocol version")
	ErrBadHeaders = errors.New("protocol: malformed headers block")
)

// Header returns the 7-byte header frame for a dialect and command.
func Header(d Dialect, c Command) []byte {
	tag := ClientTag
	if d == Worker {
		tag = WorkerTag
	}
	h := make([]byte, HeaderLen)
	copy(h, tag)
	h[HeaderLen-1] = byte(c)
	return h
}

// ParseHeader checks a header frame for the wanted dialect and returns its
// command. A frame with the right "HOSEx" prefix but another version digit
// returns ErrVersion so the receiver can answer "unsupported version".
func ParseHeader(frame []byte, want Dialect) (Command, error) {
	tag := ClientTag
	if want == Worker {
		tag = WorkerTag
	}
	if len(frame) < tagPrefixLen || string(frame[:tagPrefixLen]) != tag[:tagPrefixLen] {
		return 0, ErrBadTag
	}
	if len(frame) < HeaderLen {
		return 0, ErrBadTag
	}
	if frame[tagPrefixLen] != tag[tagPrefixLen] {
		return 0, ErrVersion
	}
	return Command(frame[HeaderLen-1]), nil
}

// IsClientHeader reports whether frame starts with the client dialect's
// tag prefix ("HOSEC"), whatever its version: a client talking to a socket
// meant for workers.
func IsClientHeader(frame []byte) bool {
	return len(frame) >= tagPrefixLen && string(frame[:tagPrefixLen]) == ClientTag[:tagPrefixLen]
}

// Job is a request record (client to broker) or a job record (broker to
// worker): both share one layout. On decode the byte slices alias the body
// they were read from.
//
//	u32 length of the rest of the record
//	u64 id          request id (chosen by the client) or job id (by the broker)
//	u32 timeout_ms  relative; 0 in a request means the broker's default
//	u8  flags
//	u8  service length, service bytes (empty means "default")
//	u16 headers length, headers block
//	... payload: the rest of the record
type Job struct {
	ID        uint64
	TimeoutMS uint32
	Flags     byte
	Service   []byte
	Headers   []byte // encoded headers block, see AppendHeader
	Payload   []byte
}

const jobFixed = 8 + 4 + 1 + 1 + 2

// JobSize is the encoded size of a job record.
func JobSize(serviceLen, headersLen, payloadLen int) int {
	return 4 + jobFixed + serviceLen + headersLen + payloadLen
}

// AppendJob appends one job (or request) record to dst.
// The caller keeps Service under 256 bytes and Headers under 64 KiB.
func AppendJob(dst []byte, j *Job) []byte {
	n := jobFixed + len(j.Service) + len(j.Headers) + len(j.Payload)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = binary.BigEndian.AppendUint64(dst, j.ID)
	dst = binary.BigEndian.AppendUint32(dst, j.TimeoutMS)
	dst = append(dst, j.Flags, byte(len(j.Service)))
	dst = append(dst, j.Service...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(j.Headers)))
	dst = append(dst, j.Headers...)
	return append(dst, j.Payload...)
}

// SplitRecord splits the first length-prefixed record off a batch body and
// returns the record without its length prefix. A receiver that cannot
// decode one record can still skip to the next.
func SplitRecord(b []byte) (rec, rest []byte, err error) { return record(b) }

// RecordID returns the id that starts every record, or false when the
// record is too short to hold one.
func RecordID(rec []byte) (uint64, bool) {
	if len(rec) < 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(rec), true
}

// record splits the first length-prefixed record off b.
func record(b []byte) (rec, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, ErrShort
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, ErrShort
	}
	return b[4 : 4+n], b[4+n:], nil
}

// NextJob decodes the first job record of b into j and returns the rest.
func NextJob(b []byte, j *Job) (rest []byte, err error) {
	rec, rest, err := record(b)
	if err != nil {
		return nil, err
	}
	if err := DecodeJob(rec, j); err != nil {
		return nil, err
	}
	return rest, nil
}

// DecodeJob decodes one job record (without its length prefix) into j.
func DecodeJob(rec []byte, j *Job) error {
	if len(rec) < jobFixed {
		return ErrShort
	}
	j.ID = binary.BigEndian.Uint64(rec)
	j.TimeoutMS = binary.BigEndian.Uint32(rec[8:])
	j.Flags = rec[12]
	sl := int(rec[13])
	p := 14
	if len(rec) < p+sl+2 {
		return ErrShort
	}
	j.Service = rec[p : p+sl]
	p += sl
	hl := int(binary.BigEndian.Uint16(rec[p:]))
	p += 2
	if len(rec) < p+hl {
		return ErrShort
	}
	j.Headers = rec[p : p+hl]
	if err := CheckHeaders(j.Headers); err != nil {
		return err
	}
	j.Payload = rec[p+hl:]
	return nil
}

// AppendHeader appends one key/value pair to a headers block:
// u8 key length, key, u16 value length, value.
func AppendHeader(dst []byte, key, value string) []byte {
	dst = append(dst, byte(len(key)))
	dst = append(dst, key...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(value)))
	return append(dst, value...)
}

// NextHeader decodes the first pair of a headers block.
func NextHeader(b []byte) (key, value, rest []byte, err error) {
	if len(b) < 1 {
		return nil, nil, nil, ErrBadHeaders
	}
	kl := int(b[0])
	if len(b) < 1+kl+2 {
		return nil, nil, nil, ErrBadHeaders
	}
	key = b[1 : 1+kl]
	vl := int(binary.BigEndian.Uint16(b[1+kl:]))
	p := 1 + kl + 2
	if len(b) < p+vl {
		return nil, nil, nil, ErrBadHeaders
	}
	return key, b[p : p+vl], b[p+vl:], nil
}

// CheckHeaders validates a headers block without allocating.
func CheckHeaders(b []byte) error {
	for len(b) > 0 {
		var err error
		if _, _, b, err = NextHeader(b); err != nil {
			return err
		}
	}
	return nil
}

// DecodeHeaders returns a headers block as a map (nil when empty).
func DecodeHeaders(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	m := make(map[string]string)
	for len(b) > 0 {
		k, v, rest, err := NextHeader(b)
		if err != nil {
			return nil, err
		}
		// The first value of a repeated key wins, as in Job.Header.
		if _, dup := m[string(k)]; !dup {
			m[string(k)] = string(v)
		}
		b = rest
	}
	return m, nil
}

// Reply is a reply record (broker to client).
//
//	u32 length of the rest of the record
//	u64 request id
//	u8  status
//	u32 queue_us    time the job waited in the broker before dispatch
//	u32 service_us  time from dispatch to the worker's result
//	... payload: the result, or the error message when status is not ok
type Reply struct {
	ID        uint64
	Status    Status
	QueueUS   uint32
	ServiceUS uint32
	Payload   []byte
}

const replyFixed = 8 + 1 + 4 + 4

// AppendReply appends one reply record to dst.
func AppendReply(dst []byte, r *Reply) []byte {
	return AppendReplyParts(dst, r.ID, r.Status, r.QueueUS, r.ServiceUS, r.Payload)
}

// AppendReplyParts is AppendReply without building a Reply value.
func AppendReplyParts(dst []byte, id uint64, st Status, queueUS, serviceUS uint32, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(replyFixed+len(payload)))
	dst = binary.BigEndian.AppendUint64(dst, id)
	dst = append(dst, byte(st))
	dst = binary.BigEndian.AppendUint32(dst, queueUS)
	dst = binary.BigEndian.AppendUint32(dst, serviceUS)
	return append(dst, payload...)
}

// NextReply decodes the first reply record of b.
func NextReply(b []byte, r *Reply) (rest []byte, err error) {
	rec, rest, err := record(b)
	if err != nil {
		return nil, err
	}
	if len(rec) < replyFixed {
		return nil, ErrShort
	}
	r.ID = binary.BigEndian.Uint64(rec)
	r.Status = Status(rec[8])
	r.QueueUS = binary.BigEndian.Uint32(rec[9:])
	r.ServiceUS = binary.BigEndian.Uint32(rec[13:])
	r.Payload = rec[replyFixed:]
	return rest, nil
}

// Result is a result record (worker to broker).
//
//	u32 length of the rest of the record
//	u64 job id
//	u8  status (ok or worker error)
//	... payload: the result, or the error message
type Result struct {
	ID      uint64
	Status  Status
	Payload []byte
}

const resultFixed = 8 + 1

// AppendResult appends one result record to dst.
func AppendResult(dst []byte, id uint64, st Status, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(resultFixed+len(payload)))
	dst = binary.BigEndian.AppendUint64(dst, id)
	dst = append(dst, byte(st))
	return append(dst, payload...)
}

// NextResult decodes the first result record of b.
func NextResult(b []byte, r *Result) (rest []byte, err error) {
	rec, rest, err := record(b)
	if err != nil {
		return nil, err
	}
	if len(rec) < resultFixed {
		return nil, ErrShort
	}
	r.ID = binary.BigEndian.Uint64(rec)
	r.Status = Status(rec[8])
	r.Payload = rec[resultFixed:]
	return rest, nil
}
