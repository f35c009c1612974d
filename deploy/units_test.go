package deploy

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The paths the units and env files use on a real host; tests map them to
// a per-host directory and the freshly built binary.
const (
	realBin = "/usr/local/bin/hose"
	realEtc = "/etc/hose/"
)

// unitFile is a parsed systemd unit: for each section, each key's values
// in order (EnvironmentFile= may repeat).
type unitFile struct {
	path     string
	sections map[string]map[string][]string
}

// readUnit parses a unit file: sections, key=value lines, comments and
// backslash continuations, which is all the units in systemd/ use.
func readUnit(t testing.TB, path string) *unitFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := &unitFile{path: path, sections: map[string]map[string][]string{}}
	section := ""
	var logical string
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if logical == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			logical += rest + " "
			continue
		}
		logical += line
		line, logical = logical, ""
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			u.sections[section] = map[string][]string{}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n+1, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		u.sections[section][k] = append(u.sections[section][k], v)
	}
	return u
}

// value returns the last value of key in section ("" when absent).
func (u *unitFile) value(section, key string) string {
	vs := u.sections[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// specifiers replaces the unit specifiers the units use: %i (the instance)
// and %%.
func specifiers(s, instance string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("%q: lone %%", s)
		}
		i++
		switch s[i] {
		case 'i':
			b.WriteString(instance)
		case '%':
			b.WriteByte('%')
		default:
			return "", fmt.Errorf("%q: specifier %%%c not handled by the test", s, s[i])
		}
	}
	return b.String(), nil
}

var (
	envName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	bracedVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
)

// parseEnv reads an EnvironmentFile: KEY=VALUE lines, # and ; comments,
// optional quotes around a value.
func parseEnv(text string, into map[string]string) error {
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || !envName.MatchString(k) {
			return fmt.Errorf("line %d: want KEY=VALUE, got %q", n, line)
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		if strings.ContainsAny(v, `\"'$`) {
			return fmt.Errorf("line %d: %q: quoting or expansion the test does not model", n, v)
		}
		into[k] = v
	}
	return sc.Err()
}

// expandExec turns an ExecStart= value into argv as systemd does: "${VAR}"
// inside a word is replaced by the value (one argument), a word "$VAR" by
// the value split at whitespace (zero or more arguments). A variable the
// environment lacks fails, so a unit and its env file cannot drift apart.
func expandExec(line string, env map[string]string, instance string) ([]string, error) {
	if strings.ContainsAny(line, `"'`) {
		return nil, fmt.Errorf("ExecStart quoting is not modelled by the test: %s", line)
	}
	if line == "" || strings.ContainsAny(line[:1], "-@+!:") {
		return nil, fmt.Errorf("ExecStart empty or with a prefix the test does not model: %q", line)
	}
	var argv []string
	for _, w := range strings.Fields(line) {
		w, err := specifiers(w, instance)
		if err != nil {
			return nil, err
		}
		if name, ok := strings.CutPrefix(w, "$"); ok && envName.MatchString(name) {
			v, ok := env[name]
			if !ok {
				return nil, fmt.Errorf("$%s is not set by the environment files", name)
			}
			argv = append(argv, strings.Fields(v)...)
			continue
		}
		var missing []string
		w = bracedVar.ReplaceAllStringFunc(w, func(m string) string {
			name := m[2 : len(m)-1]
			v, ok := env[name]
			if !ok {
				missing = append(missing, name)
			}
			return v
		})
		if len(missing) > 0 {
			return nil, fmt.Errorf("${%s} is not set by the environment files", missing[0])
		}
		if strings.Contains(w, "$") {
			return nil, fmt.Errorf("%q: a $ the test does not model", w)
		}
		argv = append(argv, w)
	}
	return argv, nil
}

// unitCommand returns the command systemd would start for unit (a file in
// systemd/; a template's instance in instance) on a host whose /etc/hose
// is the directory etc: the unit's EnvironmentFile= files are read from
// there, and /etc/hose/ paths and the hose binary in the command are
// mapped to etc and bin.
func unitCommand(t testing.TB, unit, instance, etc, bin string) []string {
	t.Helper()
	u := readUnit(t, filepath.Join("systemd", unit))
	local := func(p string) string {
		if p == realBin {
			return bin
		}
		if rest, ok := strings.CutPrefix(p, realEtc); ok {
			return filepath.Join(etc, rest)
		}
		return p
	}
	env := map[string]string{}
	for _, ef := range u.sections["Service"]["EnvironmentFile"] {
		p, optional := strings.CutPrefix(ef, "-")
		p, err := specifiers(p, instance)
		if err != nil {
			t.Fatalf("%s: EnvironmentFile: %v", unit, err)
		}
		b, err := os.ReadFile(local(p))
		if optional && os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatalf("%s: EnvironmentFile: %v", unit, err)
		}
		if err := parseEnv(string(b), env); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	argv, err := expandExec(u.value("Service", "ExecStart"), env, instance)
	if err != nil {
		t.Fatalf("%s: %v", unit, err)
	}
	for i, a := range argv {
		argv[i] = local(a)
	}
	return argv
}

// shippedEnv returns the values of an env file as shipped in env/.
func shippedEnv(t testing.TB, name string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("env", name))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	if err := parseEnv(string(b), env); err != nil {
		t.Fatalf("env/%s: %v", name, err)
	}
	return env
}

// installEnv writes env/name into etc as an administrator would: copied,
// with the assignments in edits changed in place (each must be in the
// file), and extra KEY=VALUE lines appended.
func installEnv(t testing.TB, etc, name string, edits map[string]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("env", name))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for k, v := range edits {
		n := 0
		for i, l := range lines {
			if strings.HasPrefix(l, k+"=") {
				lines[i] = k + "=" + v
				n++
			}
		}
		if n != 1 {
			t.Fatalf("env/%s: %d assignments of %s, want 1", name, n, k)
		}
	}
	if err := os.WriteFile(filepath.Join(etc, name), []byte(strings.Join(lines, "\n")), 0o640); err != nil {
		t.Fatal(err)
	}
}

// unitSpec says what each shipped unit must be.
type unitSpec struct {
	file, env string
	cmd       string   // hose subcommand
	curve     []string // CURVE flags the command must carry
	// stopBudget is how long a SIGTERM stop may take given the drain
	// timeout; TimeoutStopSec must exceed it.
	stopBudget func(drain time.Duration) time.Duration
	restart    string
}

var unitSpecs = []unitSpec{
	{
		file: "hose-broker.service", env: "broker.env", cmd: "broker",
		curve:      []string{"-curve-secret", "-client-keys", "-worker-keys"},
		stopBudget: func(d time.Duration) time.Duration { return d },
		restart:    "on-failure",
	},
	{
		file: "hose-worker@.service", env: "worker.env", cmd: "worker",
		curve:      []string{"-curve-server-key", "-curve-key"},
		stopBudget: func(d time.Duration) time.Duration { return d },
		// A retired worker exits 0 and must come back.
		restart: "always",
	},
	{
		// hose cluster: workers get the drain timeout plus 2s, then the
		// broker gets the drain timeout.
		file: "hose-cluster.service", env: "cluster.env", cmd: "cluster",
		stopBudget: func(d time.Duration) time.Duration { return 2*d + 2*time.Second },
		restart:    "on-failure",
	},
}

// TestUnits checks the shipped units against what a deployment needs:
// every flag exists in hose, CURVE is on, endpoints stay on loopback until
// an administrator names an address, the stop timeout outlasts the drain,
// and the hardening is there. It needs no privileges.
func TestUnits(t *testing.T) {
	for _, s := range unitSpecs {
		t.Run(s.file, func(t *testing.T) {
			u := readUnit(t, filepath.Join("systemd", s.file))
			svc := func(k string) string { return u.value("Service", k) }
			for k, want := range map[string]string{
				"KillSignal": "SIGTERM", "KillMode": "mixed", "Restart": s.restart,
				"User": "hose", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
				"ProtectHome": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": "",
			} {
				if _, ok := u.sections["Service"][k]; !ok || svc(k) != want {
					t.Errorf("%s=%q, want %q", k, svc(k), want)
				}
			}
			if u.value("Install", "WantedBy") != "multi-user.target" {
				t.Errorf("WantedBy=%q, want multi-user.target", u.value("Install", "WantedBy"))
			}
			env := shippedEnv(t, s.env)
			drain, err := time.ParseDuration(env["HOSE_DRAIN_TIMEOUT"])
			if err != nil {
				t.Fatalf("env/%s: HOSE_DRAIN_TIMEOUT: %v", s.env, err)
			}
			stop, err := time.ParseDuration(svc("TimeoutStopSec"))
			if err != nil {
				t.Fatalf("TimeoutStopSec: %v", err)
			}
			if need := s.stopBudget(drain); stop <= need {
				t.Errorf("TimeoutStopSec=%v does not outlast a drain of %v (HOSE_DRAIN_TIMEOUT=%v)", stop, need, drain)
			}
			for k, v := range env {
				if !strings.HasSuffix(k, "FRONTEND") && !strings.HasSuffix(k, "BACKEND") &&
					k != "HOSE_STATS" && k != "HOSE_CONTROL" && k != "HOSE_METRICS" {
					continue
				}
				if v != "" && !onLoopback(v) {
					t.Errorf("env/%s: %s=%s: the shipped files must keep every endpoint on loopback", s.env, k, v)
				}
			}

			etc := t.TempDir()
			installEnv(t, etc, s.env, nil)
			argv := unitCommand(t, s.file, "1", etc, hoseBin)
			if argv[0] != hoseBin || argv[1] != s.cmd {
				t.Fatalf("ExecStart runs %q, want %s %s", argv[:2], realBin, s.cmd)
			}
			for _, f := range s.curve {
				if !containsArg(argv, f) {
					t.Errorf("ExecStart lacks %s: %q", f, argv)
				}
			}
			// Every flag must exist: hose parses them all before it meets
			// -h, then prints the usage and exits 0.
			out, err := exec.Command(hoseBin, append(argv[1:], "-h")...).CombinedOutput()
			if err != nil {
				t.Errorf("%q -h: %v\n%s", argv, err, out)
			}
		})
	}
}

// TestUnitsVerify runs systemd-analyze verify on the units, when it is
// installed, and fails on any complaint about them (unknown keys, bad
// values).
func TestUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	dir := t.TempDir()
	var units []string
	for _, s := range unitSpecs {
		b, err := os.ReadFile(filepath.Join("systemd", s.file))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), realBin, hoseBin)
		text = strings.ReplaceAll(text, realEtc, dir+"/")
		name := strings.Replace(s.file, "@.", "@1.", 1)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		installEnv(t, dir, s.env, nil)
		units = append(units, filepath.Join(dir, name))
	}
	out, _ := exec.Command(sa, append([]string{"verify"}, units...)...).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, dir) || strings.Contains(line, "hose-") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}

// onLoopback reports whether a tcp:// endpoint or HOST:PORT is on
// 127.0.0.1 or ::1.
func onLoopback(ep string) bool {
	if !strings.Contains(ep, "://") {
		ep = "tcp://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil {
		return false
	}
	h := u.Hostname()
	return h == "127.0.0.1" || h == "::1" || h == "localhost"
}

func containsArg(argv []string, a string) bool {
	for _, x := range argv {
		if x == a {
			return true
		}
	}
	return false
}
