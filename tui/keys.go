package tui

import "charm.land/bubbles/v2/key"

// KeyMap is every key hosetop answers to; the help screen and the footer are
// generated from it.
type KeyMap struct {
	Quit    key.Binding
	Help    key.Binding
	Back    key.Binding
	Pause   key.Binding
	Faster  key.Binding
	Slower  key.Binding
	Filter  key.Binding
	SortPrv key.Binding
	SortNxt key.Binding
	Reverse key.Binding
	Up      key.Binding
	Down    key.Binding
	PgUp    key.Binding
	PgDown  key.Binding
	Top     key.Binding
	Bottom  key.Binding
	Detail  key.Binding
	Errors  key.Binding
	Compare key.Binding
	Next    key.Binding
	Add     key.Binding
	Remove  key.Binding
	SetN    key.Binding
	Export  key.Binding
	Clear   key.Binding
}

// DefaultKeyMap is the key map of htop and k9s habits.
func DefaultKeyMap() KeyMap {
	b := func(keys []string, help, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	return KeyMap{
		Quit:    b([]string{"q", "ctrl+c"}, "q", "quit"),
		Help:    b([]string{"?", "f1"}, "?", "help"),
		Back:    b([]string{"esc"}, "esc", "back"),
		Pause:   b([]string{"p", "space"}, "p", "pause"),
		Faster:  b([]string{"]"}, "]", "faster"),
		Slower:  b([]string{"["}, "[", "slower"),
		Filter:  b([]string{"/"}, "/", "filter"),
		SortPrv: b([]string{"<", ","}, "<", "sort ←"),
		SortNxt: b([]string{">", "."}, ">", "sort →"),
		Reverse: b([]string{"r"}, "r", "reverse"),
		Up:      b([]string{"up", "k"}, "↑/k", "up"),
		Down:    b([]string{"down", "j"}, "↓/j", "down"),
		PgUp:    b([]string{"pgup", "ctrl+b"}, "pgup", "page up"),
		PgDown:  b([]string{"pgdown", "ctrl+f"}, "pgdn", "page down"),
		Top:     b([]string{"home", "g"}, "home/g", "first"),
		Bottom:  b([]string{"end", "G"}, "end/G", "last"),
		Detail:  b([]string{"enter"}, "enter", "detail"),
		Errors:  b([]string{"e"}, "e", "errors"),
		Compare: b([]string{"c"}, "c", "compare"),
		Next:    b([]string{"tab"}, "tab", "next view"),
		Add:     b([]string{"+", "="}, "+", "add worker"),
		Remove:  b([]string{"-", "_"}, "-", "remove worker"),
		SetN:    b([]string{"w"}, "w", "set workers"),
		Export:  b([]string{"x"}, "x", "export"),
		Clear:   b([]string{"X"}, "X", "clear comparison"),
	}
}

// ShortHelp is the footer of the main view.
func (k KeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Help, k.Filter, k.SortNxt, k.Reverse, k.Pause, k.Add, k.Remove, k.Compare, k.Errors, k.Quit}
}

// FullHelp is the help screen, in groups.
func (k KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Help, k.Back, k.Pause, k.Slower, k.Faster, k.Quit},
		{k.Up, k.Down, k.PgUp, k.PgDown, k.Top, k.Bottom, k.Detail},
		{k.Filter, k.SortPrv, k.SortNxt, k.Reverse},
		{k.Errors, k.Compare, k.Next, k.Add, k.Remove, k.SetN, k.Export, k.Clear},
	}
}

// helpGroups names the FullHelp groups on the help screen.
var helpGroups = []string{"general", "moving", "workers table", "views and worker count"}

// longHelp explains a binding on the help screen, by its help key, when
// the screen is wide enough.
var longHelp = map[string]string{
	"?":     "this help",
	"esc":   "back, or clear the filter",
	"p":     "pause the display",
	"[":     "refresh less often",
	"]":     "refresh more often",
	"enter": "detail of the selected worker",
	"/":     "filter (!text excludes)",
	"<":     "sort by the left column",
	">":     "sort by the right column",
	"r":     "reverse the sort",
	"e":     "errors by kind",
	"c":     "compare worker counts",
	"tab":   "main → errors → compare",
	"+":     "add a worker",
	"-":     "remove a worker",
	"w":     "type a worker count",
	"x":     "export comparison (md, json)",
	"X":     "clear the comparison",
}
