package tui

import (
	"bytes"
	tea "charm.land/bubbletea/v2"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
)

// The golden files are the views at fixed sizes: plain text (profile NoTTY)
// so a diff reads like the screen, and a few in 256 colours. Refresh them
// with: go test ./tui -run Golden -update

// render is the view as a terminal of profile p receives it.
func render(t testing.TB, m *Model, p colorprofile.Profile) string {
	t.Helper()
	var b bytes.Buffer
	w := &colorprofile.Writer{Forward: &b, Profile: p}
	if _, err := io.WriteString(w, m.View().Content); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// busyCluster is a model that has watched a cluster for a while: load
// rising then steady, a worker-count change, errors, a lost worker, and a
// controller.
func busyCluster(t testing.TB, w, h int) *Model {
	t.Helper()
	fc := &fakeControl{workers: 6}
	m := testModel(t, Config{Control: fc, ControlName: "demo", Load: "sleep:10ms at 500/s", Settle: 2 * time.Second}, w, h)
	run(m, m.getWorkers())
	wd := newWorld()
	for i := 0; i < 30; i++ {
		ok := uint64(200 + 10*i)
		lat := int64(900 + 400*math.Sin(float64(i)/3))
		feed(m, wd, step{ok: ok, bad: uint64(i % 3), workers: 4, busy: 4, queue: 40 - i, lat: lat})
	}
	for i := 0; i < 30; i++ {
		lat := int64(600 + 150*math.Cos(float64(i)/4))
		s := step{ok: 500, bad: uint64(i % 2), expired: uint64(i % 5 / 4), workers: 6, busy: 1, lat: lat}
		if i > 20 {
			s.lost = []uint32{9}
		}
		feed(m, wd, s)
	}
	return m
}

func TestGolden(t *testing.T) {
	plainAt := func(w, h int, setup func(*Model)) func(*testing.T) {
		return func(t *testing.T) {
			m := busyCluster(t, w, h)
			if setup != nil {
				setup(m)
			}
			golden.RequireEqual(t, render(t, m, colorprofile.NoTTY))
		}
	}
	t.Run("main_80x24", plainAt(80, 24, nil))
	t.Run("main_100x30", plainAt(100, 30, nil))
	t.Run("main_132x43", plainAt(132, 43, nil))
	t.Run("main_60x20", plainAt(60, 20, nil))
	t.Run("main_50x14", plainAt(50, 14, nil))
	t.Run("main_40x10", plainAt(40, 10, nil))
	t.Run("tiny_30x6", plainAt(30, 6, nil))
	t.Run("sorted_by_p99_reversed_80x24", plainAt(80, 24, func(m *Model) {
		for columns[m.table.sortCol].title != "P99" {
			press(m, ">")
		}
		press(m, "r", "down", "down")
	}))
	t.Run("filter_typing_80x24", plainAt(80, 24, func(m *Model) { press(m, "/", "n", "o", "d", "e", "-", "a") }))
	t.Run("paused_80x24", plainAt(80, 24, func(m *Model) { press(m, "p") }))
	t.Run("detail_80x24", plainAt(80, 24, func(m *Model) { press(m, "down", "enter") }))
	t.Run("detail_lost_80x24", plainAt(80, 24, func(m *Model) { press(m, "G", "enter") }))
	t.Run("errors_80x24", plainAt(80, 24, func(m *Model) { press(m, "e") }))
	t.Run("compare_80x24", plainAt(80, 24, func(m *Model) { press(m, "c") }))
	t.Run("help_80x24", plainAt(80, 24, func(m *Model) { press(m, "?") }))
	t.Run("help_100x30", plainAt(100, 30, func(m *Model) { press(m, "?") }))
	t.Run("broker_gone_80x24", plainAt(80, 24, func(m *Model) {
		m.Update(WaitingMsg{Endpoint: m.cfg.Endpoint, LastSeen: m.lastSeen, At: m.lastSeen.Add(7 * time.Second)})
	}))
	t.Run("set_workers_prompt_80x24", plainAt(80, 24, func(m *Model) { press(m, "w", "1", "2") }))
	t.Run("waiting_80x24", func(t *testing.T) {
		m := testModel(t, Config{}, 80, 24)
		m.Update(tickMsg(t0.Add(12 * time.Second)))
		golden.RequireEqual(t, render(t, m, colorprofile.NoTTY))
	})
	t.Run("main_80x24_ansi256", func(t *testing.T) {
		golden.RequireEqual(t, render(t, busyCluster(t, 80, 24), colorprofile.ANSI256))
	})
	t.Run("compare_80x24_ansi256", func(t *testing.T) {
		m := busyCluster(t, 80, 24)
		press(m, "c")
		golden.RequireEqual(t, render(t, m, colorprofile.ANSI256))
	})
}

// TestEverySizeFits checks that every view fills the terminal exactly,
// whatever its size, and follows a resize.
func TestEverySizeFits(t *testing.T) {
	m := busyCluster(t, 80, 24)
	check := func(w, h int, view string) {
		t.Helper()
		lines := strings.Split(m.View().Content, "\n")
		if len(lines) != h {
			t.Fatalf("%s at %dx%d: %d lines", view, w, h, len(lines))
		}
		for i, l := range lines {
			if got := ansi.StringWidth(l); got != w {
				t.Fatalf("%s at %dx%d: line %d is %d wide: %q", view, w, h, i, got, ansi.Strip(l))
			}
		}
	}
	for _, v := range []struct {
		name string
		keys []string
	}{{"main", nil}, {"detail", []string{"enter"}}, {"errors", []string{"e"}}, {"compare", []string{"c"}}, {"help", []string{"?"}}} {
		press(m, "esc", "esc")
		press(m, v.keys...)
		for _, w := range []int{1, 10, 25, 39, 40, 52, 79, 80, 81, 100, 160, 250} {
			for _, h := range []int{1, 3, 7, 8, 11, 14, 15, 18, 19, 23, 24, 39, 40, 60} {
				m.Update(windowSize(w, h))
				check(w, h, fmt.Sprint(v.name))
			}
		}
	}
}

func windowSize(w, h int) tea.WindowSizeMsg { return tea.WindowSizeMsg{Width: w, Height: h} }
