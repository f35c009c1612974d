package tui

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hose-project/hose/stats"
)

// row is one worker as the table shows it.
type row struct {
	w    *stats.Worker
	rate float64 // jobs per second since the previous refresh
}

// column is one column of the worker table.
type column struct {
	title string
	width int
	right bool
	// drop orders the columns that go when the terminal is narrow: the
	// highest first; 0 never goes.
	drop  int
	text  func(r row) string
	order func(a, b row) int
}

var stateOrder = map[string]int{stats.StateBusy: 0, stats.StateReady: 1, stats.StateDraining: 2, stats.StateLost: 3}

// columns of the worker table. Sorting may use any of them.
var columns = []column{
	{"ID", 5, true, 0, func(r row) string { return strconv.FormatUint(uint64(r.w.ID), 10) },
		func(a, b row) int { return cmp.Compare(a.w.ID, b.w.ID) }},
	{"STATE", 8, false, 0, func(r row) string { return r.w.State },
		func(a, b row) int { return cmp.Compare(stateOrder[a.w.State], stateOrder[b.w.State]) }},
	{"HOST", 10, false, 3, func(r row) string { return r.w.Host },
		func(a, b row) int { return strings.Compare(a.w.Host, b.w.Host) }},
	{"PID", 7, true, 5, func(r row) string { return strconv.FormatUint(uint64(r.w.PID), 10) },
		func(a, b row) int { return cmp.Compare(a.w.PID, b.w.PID) }},
	{"SERVICES", 12, false, 6, func(r row) string { return strings.Join(r.w.Services, ",") },
		func(a, b row) int {
			return strings.Compare(strings.Join(a.w.Services, ","), strings.Join(b.w.Services, ","))
		}},
	{"CAP", 4, true, 4, func(r row) string { return strconv.Itoa(r.w.Capacity) },
		func(a, b row) int { return cmp.Compare(a.w.Capacity, b.w.Capacity) }},
	{"INFL", 5, true, 2, func(r row) string { return strconv.Itoa(r.w.InFlight) },
		func(a, b row) int { return cmp.Compare(a.w.InFlight, b.w.InFlight) }},
	{"DONE", 7, true, 2, func(r row) string { return fmtCount(r.w.Done) },
		func(a, b row) int { return cmp.Compare(a.w.Done, b.w.Done) }},
	{"ERR", 6, true, 2, func(r row) string { return fmtCount(r.w.Errors) },
		func(a, b row) int { return cmp.Compare(a.w.Errors, b.w.Errors) }},
	{"JOBS/S", 7, true, 1, func(r row) string { return fmtRate(r.rate) },
		func(a, b row) int { return cmp.Compare(a.rate, b.rate) }},
	{"P50", 7, true, 1, func(r row) string { return fmtUS(r.w.P50US) },
		func(a, b row) int { return cmp.Compare(a.w.P50US, b.w.P50US) }},
	{"P99", 7, true, 1, func(r row) string { return fmtUS(r.w.P99US) },
		func(a, b row) int { return cmp.Compare(a.w.P99US, b.w.P99US) }},
	{"HEARD", 6, true, 3, func(r row) string {
		return fmtAge(time.Duration(r.w.LastHeardMS * float64(time.Millisecond)))
	}, func(a, b row) int { return cmp.Compare(a.w.LastHeardMS, b.w.LastHeardMS) }},
	{"AGE", 7, true, 5, func(r row) string { return fmtAge(time.Duration(r.w.AgeS * float64(time.Second))) },
		func(a, b row) int { return cmp.Compare(a.w.AgeS, b.w.AgeS) }},
}

// visibleColumns are the indexes of the columns that fit in width.
func visibleColumns(width int) []int {
	cols := make([]int, len(columns))
	for i := range cols {
		cols[i] = i
	}
	total := func() int {
		n := 0
		for _, c := range cols {
			n += columns[c].width + 1
		}
		return n
	}
	for total() > width {
		worst := -1
		for i, c := range cols {
			if columns[c].drop > 0 && (worst < 0 || columns[c].drop >= columns[cols[worst]].drop) {
				worst = i
			}
		}
		if worst < 0 {
			break
		}
		cols = slices.Delete(cols, worst, worst+1)
	}
	return cols
}

// tableState is the worker table's sort, filter and selection.
type tableState struct {
	sortCol  int
	reverse  bool
	filter   string
	selected uint32 // worker ID of the selected row, 0 for none
	offset   int    // first row shown
}

// matches reports whether r passes filter: a case-insensitive substring of
// its id, state, host, pid or services; a leading ! inverts it.
func matches(r row, filter string) bool {
	if filter == "" {
		return true
	}
	neg := strings.HasPrefix(filter, "!")
	if neg {
		filter = filter[1:]
	}
	if filter == "" {
		return true
	}
	w := r.w
	hay := strings.ToLower(strconv.FormatUint(uint64(w.ID), 10) + " " + w.State + " " + w.Host + " " +
		strconv.FormatUint(uint64(w.PID), 10) + " " + strings.Join(w.Services, " "))
	return strings.Contains(hay, strings.ToLower(filter)) != neg
}

// buildRows filters and sorts the workers of s.
func buildRows(s *stats.Snapshot, rates map[uint32]float64, t tableState) []row {
	if s == nil {
		return nil
	}
	rows := make([]row, 0, len(s.Workers))
	for i := range s.Workers {
		r := row{w: &s.Workers[i], rate: rates[s.Workers[i].ID]}
		if matches(r, t.filter) {
			rows = append(rows, r)
		}
	}
	order := columns[t.sortCol].order
	slices.SortStableFunc(rows, func(a, b row) int {
		c := order(a, b)
		if c == 0 {
			c = cmp.Compare(a.w.ID, b.w.ID)
		}
		if t.reverse {
			return -c
		}
		return c
	})
	return rows
}

// selectedIndex is the index of the selected worker in rows (0 when it is
// not there).
func selectedIndex(rows []row, id uint32) int {
	for i, r := range rows {
		if r.w.ID == id {
			return i
		}
	}
	return 0
}

// scrollOffset keeps the selected row inside a window of height rows.
func scrollOffset(offset, sel, height, n int) int {
	if height <= 0 {
		return 0
	}
	if sel < offset {
		offset = sel
	}
	if sel >= offset+height {
		offset = sel - height + 1
	}
	return max(min(offset, n-height), 0)
}

// renderTable draws the heading and up to height-1 rows.
func renderTable(rows []row, t tableState, width, height int, st Styles) []string {
	if height <= 0 {
		return nil
	}
	cols := visibleColumns(width)
	var head strings.Builder
	for _, c := range cols {
		title := columns[c].title
		if c == t.sortCol {
			if t.reverse {
				title += "▼"
			} else {
				title += "▲"
			}
		}
		cell := cellText(title, columns[c])
		if c == t.sortCol {
			cell = st.Sorted.Render(cell)
		} else {
			cell = st.Heading.Render(cell)
		}
		head.WriteString(cell + " ")
	}
	out := []string{fit(head.String(), width)}
	if len(rows) == 0 {
		msg := "no workers"
		if t.filter != "" {
			msg = "no worker matches the filter " + strconv.Quote(t.filter) + " (esc clears it)"
		}
		return append(out, st.Dim.Render(fit(" "+msg, width)))
	}
	sel := selectedIndex(rows, t.selected)
	n := height - 1
	off := scrollOffset(t.offset, sel, n, len(rows))
	for i := off; i < len(rows) && i < off+n; i++ {
		r := rows[i]
		var line strings.Builder
		for _, c := range cols {
			cell := cellText(columns[c].text(r), columns[c])
			if i != sel && columns[c].title == "STATE" {
				if s, ok := st.States[r.w.State]; ok {
					cell = s.Render(cell)
				}
			}
			line.WriteString(cell + " ")
		}
		text := fit(line.String(), width)
		if i == sel {
			text = st.Selected.Render(text)
		}
		out = append(out, text)
	}
	return out
}

func cellText(s string, c column) string {
	if c.right {
		return padLeft(s, c.width)
	}
	return padRight(s, c.width)
}
