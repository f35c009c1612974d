package broker

import (
	"fmt"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/internal/zsock"
)

// CURVE: when Config.CurveSecretKey is set, both ROUTERs are CURVE servers
// and the broker answers libzmq's ZAP requests itself, checking client keys
// against Config.ClientKeys on the frontend and worker keys against
// Config.WorkerKeys on the backend.
//
// pebbe/zmq4's AuthStart serves ZAP on its default context only; the
// broker's sockets live in a context of their own and would not be
// authenticated at all (libzmq accepts everyone when no handler is bound).
// So the broker binds the ZAP endpoint in its own context, and its loop
// goroutine owns that REP socket like the other two.
const (
	zapEndpoint = "inproc://zeromq.zap.01"
	zapVersion  = "1.0"
	domainFront = "hose-frontend"
	domainBack  = "hose-backend"
)

// curveKey checks that k is a Z85 CURVE key.
func curveKey(k string) error {
	if len(k) != 40 || len(zmq.Z85decode(k)) != 32 {
		return fmt.Errorf("%q is not a Z85 CURVE key (40 characters)", k)
	}
	return nil
}

// keySet decodes Z85 public keys into a set of raw 32-byte keys; nil when
// the list is empty (any key is accepted).
func keySet(keys []string) map[string]bool {
	if len(keys) == 0 {
		return nil
	}
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[zmq.Z85decode(k)] = true
	}
	return m
}

// curveServer makes s a CURVE server of the given ZAP domain.
func (b *Broker) curveServer(s *zmq.Socket, domain string) error {
	if b.cfg.CurveSecretKey == "" {
		return nil
	}
	for _, set := range []func() error{
		func() error { return s.SetZapDomain(domain) },
		func() error { return s.SetCurveServer(1) },
		func() error { return s.SetCurveSecretkey(b.cfg.CurveSecretKey) },
	} {
		if err := set(); err != nil {
			return fmt.Errorf("broker: CURVE: %w", err)
		}
	}
	return nil
}

// openZAP binds the ZAP handler socket; it must exist before any CURVE
// handshake starts.
func (b *Broker) openZAP() error {
	if b.cfg.CurveSecretKey == "" {
		return nil
	}
	var err error
	if b.zap, err = b.zctx.NewSocket(zmq.REP); err != nil {
		return fmt.Errorf("broker: ZAP socket: %w", err)
	}
	_ = b.zap.SetLinger(0)
	if err := b.zap.Bind(zapEndpoint); err != nil {
		return fmt.Errorf("broker: bind ZAP handler: %w", err)
	}
	b.clientKeys = keySet(b.cfg.ClientKeys)
	b.workerKeys = keySet(b.cfg.WorkerKeys)
	if b.clientKeys == nil {
		b.cfg.Logger.Warn("CURVE on, but no client allow-list: any client with the server key may connect")
	}
	if b.workerKeys == nil {
		b.cfg.Logger.Warn("CURVE on, but no worker allow-list: any worker with the server key may connect")
	}
	return nil
}

// serveZAP answers the pending ZAP requests (RFC 27): frames version,
// request id, domain, address, identity, mechanism, credentials.
func (b *Broker) serveZAP() {
	for i := 0; i < drainMax; i++ {
		req, err := b.zap.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			return
		}
		status, text := "400", "malformed ZAP request"
		var id []byte
		if len(req) >= 6 && string(req[0]) == zapVersion {
			id = req[1]
			domain, mech := string(req[2]), string(req[5])
			status, text = b.authorize(domain, mech, req[6:])
		}
		if status != "200" {
			b.counters.AuthDenied++
			b.cfg.Logger.Info("connection refused", "reason", text, "address", string(req[min(3, len(req)-1)]))
		}
		for j, f := range [][]byte{[]byte(zapVersion), id, []byte(status), []byte(text), nil, nil} {
			flag := zmq.SNDMORE
			if j == 5 {
				flag = 0
			}
			if _, err := b.zap.SendBytes(f, flag|zmq.DONTWAIT); err != nil && !zsock.IsAgain(err) {
				return
			}
		}
	}
}

func (b *Broker) authorize(domain, mech string, creds [][]byte) (status, text string) {
	if mech != "CURVE" {
		return "400", "mechanism " + mech + " refused: this broker requires CURVE"
	}
	if len(creds) != 1 || len(creds[0]) != 32 {
		return "400", "malformed CURVE credentials"
	}
	var allowed map[string]bool
	switch domain {
	case domainFront:
		allowed = b.clientKeys
	case domainBack:
		allowed = b.workerKeys
	default:
		return "400", "unknown ZAP domain " + domain
	}
	if allowed != nil && !allowed[string(creds[0])] {
		return "400", "key not allowed on " + domain + ": " + zmq.Z85encode(string(creds[0]))
	}
	return "200", "OK"
}
