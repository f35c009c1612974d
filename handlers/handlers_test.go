package handlers

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/hose-project/hose/worker"
)

func TestParse(t *testing.T) {
	cases := []struct {
		spec string
		want string
		ok   bool
	}{
		{"echo", "echo", true},
		{"sha256", "sha256:1000", true},
		{"sha256:5", "sha256:5", true},
		{"sleep", "sleep:10ms", true},
		{"sleep:2ms", "sleep:2ms", true},
		{"fail", "fail", true},
		{"fail:boom", "fail", true},
		{"echo:1", "", false},
		{"sha256:0", "", false},
		{"sha256:x", "", false},
		{"sleep:-1s", "", false},
		{"sleep:fast", "", false},
		{"resize", "", false},
		{"", "", false},
	}
	for _, tc := range cases {
		s, err := Parse(tc.spec)
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q): err %v, want ok=%v", tc.spec, err, tc.ok)
			continue
		}
		if tc.ok && s.String() != tc.want {
			t.Errorf("Parse(%q) = %s, want %s", tc.spec, s, tc.want)
		}
	}
}

func TestHandlers(t *testing.T) {
	job := &worker.Job{Payload: []byte("abc"), Deadline: time.Now().Add(time.Minute)}
	ctx := context.Background()
	if got, err := Echo().Handle(ctx, job); err != nil || string(got) != "abc" {
		t.Fatalf("echo: %q %v", got, err)
	}
	one := sha256.Sum256([]byte("abc"))
	two := sha256.Sum256(one[:])
	if got, _ := SHA256(2).Handle(ctx, job); string(got) != string(two[:]) {
		t.Fatal("sha256:2 is not sha256(sha256(payload))")
	}
	if _, err := Fail("nope").Handle(ctx, job); err == nil || err.Error() != "nope" {
		t.Fatalf("fail: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if _, err := Sleep(time.Hour).Handle(short, job); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sleep past its deadline: %v", err)
	}
	s, _ := Parse("sha256:2")
	if got, _ := s.Direct([]byte("abc")); string(got) != string(two[:]) {
		t.Fatal("Direct differs from the handler")
	}
}
