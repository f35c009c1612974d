package tui

import (
	"errors"
	"os"
	"sort"
	"strings"

	tea "charm.land/bubbletea/v2"
)

// writeFiles is the command that writes the exported files.
func writeFiles(files map[string][]byte) tea.Cmd {
	return func() tea.Msg {
		var paths []string
		var errs []error
		for p, data := range files {
			if err := os.WriteFile(p, data, 0o644); err != nil {
				errs = append(errs, err)
				continue
			}
			paths = append(paths, p)
		}
		sort.Strings(paths)
		return exportMsg{paths: paths, err: errors.Join(errs...)}
	}
}

func joinPaths(p []string) string { return strings.Join(p, " and ") }
