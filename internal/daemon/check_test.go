package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

const checkSvc = "service %s\n{\n\ttype = INTERNAL UNLISTED\n\tsocket_type = stream\n\tprotocol = tcp\n\tport = %s\n\twait = no\n}\n"

func checkText(t *testing.T, text string, asJSON bool) (int, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	st := Check(&Options{ConfigFile: p}, &out, &errb, asJSON)
	return st, out.String()
}

// TestCheckSummaryTellsTheTruth: the last line of -t never says that
// services are accepted when a fatal error means nothing would be served,
// and the exit status follows CheckSummary.Exit.
func TestCheckSummaryTellsTheTruth(t *testing.T) {
	svc := func(name, port string) string { return fmt.Sprintf(checkSvc, name, port) }
	cases := []struct {
		name, text string
		exit       int
		want       string
	}{
		{"ok", svc("echo", "10007"), 0, "1 services accepted, 0 rejected, 0 disabled; 0 errors, 0 warnings (configuration OK)"},
		{"warning only", "defaults\n{\n\tinstances = 5 # comment\n}\n" + svc("echo", "10007"), 0, "(configuration OK)"},
		{"rejected", svc("echo", "10007") + svc("daytime", "99999"), 1, "1 services accepted, 1 rejected"},
		{"line dropped in defaults", "defaults\n{\n\tuser = root\n}\n" + svc("echo", "10007"), 1, "1 services accepted, 0 rejected, 0 disabled; 1 error, 0 warnings (configuration has errors)"},
		{"fatal defaults", "defaults\n{\n\tinstances = many\n}\n" + svc("echo", "10007"), 1,
			"configuration refused (1 fatal error): nothing would be served; of its entries 1 are valid on their own, 0 rejected, 0 disabled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, out := checkText(t, c.text, false)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			last := lines[len(lines)-1]
			if st != c.exit || !strings.Contains(last, c.want) {
				t.Errorf("exit %d, want %d; last line %q, want it to contain %q\n%s", st, c.exit, last, c.want, out)
			}
			if c.exit != 0 && strings.Contains(last, "configuration OK") {
				t.Errorf("exit %d but the summary says OK: %s", st, last)
			}
		})
	}
}

// TestCheckJSONSummary: -t -json adds a summary object and still decodes
// into a service.Config.
func TestCheckJSONSummary(t *testing.T) {
	text := "defaults\n{\n\tinstances = many\n}\n" + fmt.Sprintf(checkSvc, "echo", "10007")
	st, out := checkText(t, text, true)
	if st != 1 {
		t.Errorf("exit %d, want 1", st)
	}
	var got struct {
		Summary CheckSummary `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	want := CheckSummary{Usable: false, Served: 0, Accepted: 1, Fatal: 1, Errors: 1, Exit: 1}
	if got.Summary != want {
		t.Errorf("summary %+v, want %+v", got.Summary, want)
	}
	var cfg service.Config
	if err := json.Unmarshal([]byte(out), &cfg); err != nil || len(cfg.Services) != 1 || !cfg.Diags.HasFatal() {
		t.Errorf("the output no longer decodes into a service.Config: %v %+v", err, cfg)
	}
}
