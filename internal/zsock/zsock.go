// Package zsock holds the few ZeroMQ socket operations every hose role
// shares: reading and writing one hose message (optional routing identity,
// header frame, body frame) with as few cgo calls as pebbe/zmq4 allows, and
// classifying libzmq errors.
package zsock

import (
	"errors"
	"syscall"

	zmq "github.com/pebbe/zmq4"
)

// Msg is one received hose message. Frames counts every frame read, the
// identity included; frames past the body are read and discarded so a peer
// sending thousands of frames cannot make the reader misparse the next
// message.
type Msg struct {
	ID     []byte
	Header []byte
	Body   []byte
	Frames int
}

// Recv reads one message. router says whether the socket prepends a routing
// identity. flags applies to the first frame only (DONTWAIT for a drain
// loop); the rest of a message is always available at once.
func Recv(s *zmq.Socket, flags zmq.Flag, router bool, m *Msg) error {
	*m = Msg{}
	f, err := s.RecvBytes(flags)
	if err != nil {
		return err
	}
	m.Frames = 1
	slot := 0
	if router {
		m.ID = f
	} else {
		m.Header = f
		slot = 1
	}
	for {
		more, err := s.GetRcvmore()
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
		f, err := s.RecvBytes(0)
		if err != nil {
			return err
		}
		m.Frames++
		switch slot {
		case 0:
			m.Header = f
		case 1:
			m.Body = f
		}
		slot++
	}
}

// Send writes one message: the identity frame when id is not nil, the
// header, then the body (which may be empty).
func Send(s *zmq.Socket, id, header, body []byte, flags zmq.Flag) error {
	if id != nil {
		if _, err := s.SendBytes(id, flags|zmq.SNDMORE); err != nil {
			return err
		}
	}
	if _, err := s.SendBytes(header, flags|zmq.SNDMORE); err != nil {
		return err
	}
	_, err := s.SendBytes(body, flags)
	return err
}

func errno(err error) zmq.Errno {
	var e zmq.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// IsAgain reports a would-block error (no message, or a full pipe).
func IsAgain(err error) bool { return errno(err) == zmq.Errno(syscall.EAGAIN) }

// IsUnreachable reports a ROUTER_MANDATORY send to an unknown peer.
func IsUnreachable(err error) bool { return errno(err) == zmq.EHOSTUNREACH }

// CurveClient makes s a CURVE client of a server with public key server
// (Z85). pub and sec are the peer's own pair; empty, a fresh pair is made
// (accepted only by a server without an allow-list). Call before Connect.
func CurveClient(s *zmq.Socket, server, pub, sec string) error {
	if pub == "" {
		var err error
		if pub, sec, err = zmq.NewCurveKeypair(); err != nil {
			return err
		}
	}
	if err := s.SetCurveServerkey(server); err != nil {
		return err
	}
	if err := s.SetCurvePublickey(pub); err != nil {
		return err
	}
	return s.SetCurveSecretkey(sec)
}
