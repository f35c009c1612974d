package tui

import (
	"image/color"

	"charm.land/lipgloss/v2"
)

// Styles is every style hosetop draws with.
type Styles struct {
	Title    lipgloss.Style
	Label    lipgloss.Style
	Value    lipgloss.Style
	Dim      lipgloss.Style
	Good     lipgloss.Style
	Warn     lipgloss.Style
	Bad      lipgloss.Style
	Heading  lipgloss.Style // table headings and section titles
	Sorted   lipgloss.Style // the sorted column's heading
	Selected lipgloss.Style // the selected table row
	Key      lipgloss.Style // keys in help
	Status   lipgloss.Style // the footer's message
	Paused   lipgloss.Style
	Waiting  lipgloss.Style
	// States colours a worker state.
	States map[string]lipgloss.Style
	// Series colours the chart series: throughput, then p50, p90, p99, p99.9.
	Throughput lipgloss.Style
	Series     [4]lipgloss.Style
	ErrorsBar  lipgloss.Style
}

// DefaultStyles are hosetop's colours for a dark or light terminal.
func DefaultStyles(dark bool) Styles {
	ld := lipgloss.LightDark(dark)
	c := func(light, darkc string) color.Color { return ld(lipgloss.Color(light), lipgloss.Color(darkc)) }
	fg := func(light, darkc string) lipgloss.Style { return lipgloss.NewStyle().Foreground(c(light, darkc)) }
	s := Styles{
		Title:      fg("#005F87", "#5FD7FF").Bold(true),
		Label:      fg("#6C6C6C", "#8A8A8A"),
		Value:      lipgloss.NewStyle().Bold(true),
		Dim:        fg("#9E9E9E", "#626262"),
		Good:       fg("#008700", "#5FD75F"),
		Warn:       fg("#AF8700", "#FFD75F"),
		Bad:        fg("#D70000", "#FF5F5F").Bold(true),
		Heading:    fg("#3A3A3A", "#D0D0D0").Bold(true),
		Sorted:     fg("#005F87", "#5FD7FF").Bold(true).Underline(true),
		Selected:   lipgloss.NewStyle().Reverse(true),
		Key:        fg("#005F87", "#5FD7FF").Bold(true),
		Status:     fg("#AF5F00", "#FFAF5F"),
		Paused:     lipgloss.NewStyle().Reverse(true).Bold(true),
		Waiting:    fg("#AF8700", "#FFD75F").Bold(true),
		Throughput: fg("#008787", "#5FD7AF"),
		ErrorsBar:  fg("#D70000", "#FF5F5F"),
	}
	s.Series = [4]lipgloss.Style{fg("#008700", "#87D787"), fg("#0087AF", "#5FAFFF"), fg("#AF8700", "#FFD75F"), fg("#D70000", "#FF5F87")}
	s.States = map[string]lipgloss.Style{
		"ready":    s.Good,
		"busy":     s.Warn,
		"draining": fg("#5F5FAF", "#AFAFFF"),
		"lost":     s.Bad,
	}
	return s
}
