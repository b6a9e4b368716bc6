package parser

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// TestOwnership checks the root-only refusals on real files.
func TestOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership checks need root (chown to another uid)")
	}
	dir := t.TempDir()
	opt := testOptions()
	opt.CheckOwnership = true

	srv := filepath.Join(dir, "bin", "srv")
	write(t, srv, "#!/bin/sh\n")
	if err := os.Chmod(srv, 0o755); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, "bin", "theirs")
	write(t, theirs, "#!/bin/sh\n")
	if err := os.Chmod(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 1001, 1001); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open", "srv")
	write(t, open, "#!/bin/sh\n")
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(open), 0o777); err != nil {
		t.Fatal(err)
	}
	svc := func(name string, port int, server string) string {
		return fmt.Sprintf("service %s\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\tport = %d\n\twait = no\n\tuser = root\n\tserver = %s\n}\n", name, port, server)
	}

	main := filepath.Join(dir, "xinetd.conf")
	write(t, main, svc("good", 5000, srv)+svc("relative", 5001, "bin/srv")+svc("foreign", 5002, theirs)+
		svc("opendir", 5003, open)+"include inc/ok\ninclude inc/groupw\ninclude inc/foreign\nincludedir worldd\n")
	write(t, filepath.Join(dir, "inc/ok"), svc("incok", 5010, srv))
	write(t, filepath.Join(dir, "inc/groupw"), svc("incgw", 5011, srv))
	if err := os.Chmod(filepath.Join(dir, "inc/groupw"), 0o664); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "inc/foreign"), svc("incforeign", 5012, srv))
	if err := os.Chown(filepath.Join(dir, "inc/foreign"), 1001, 1001); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "worldd/x"), svc("world", 5013, srv))
	if err := os.Chmod(filepath.Join(dir, "worldd"), 0o777); err != nil {
		t.Fatal(err)
	}

	cfg := load(t, main, opt)
	if !cfg.Usable() {
		t.Fatalf("unexpected fatal: %v", cfg.Diags)
	}
	want := map[string]service.Status{"good": service.StatusAccepted, "relative": service.StatusRejected,
		"foreign": service.StatusRejected, "opendir": service.StatusRejected, "incok": service.StatusAccepted}
	for name, st := range want {
		s := findService(cfg, name)
		if s == nil || s.Status != st {
			t.Errorf("%s: %+v", name, s)
			continue
		}
		if st == service.StatusRejected && s.Reasons[0].Code != CodeOwnership {
			t.Errorf("%s: reason %v", name, s.Reasons)
		}
	}
	for _, name := range []string{"incgw", "incforeign", "world"} {
		if findService(cfg, name) != nil {
			t.Errorf("%s was loaded from a file non-root can change", name)
		}
	}
	n := 0
	for _, d := range cfg.Diags {
		if d.Code == CodeOwnership {
			n++
		}
	}
	if n != 6 {
		t.Errorf("want 6 ownership errors, got %d:\n%v", n, cfg.Diags)
	}

	// A main file others can write is fatal.
	if err := os.Chmod(main, 0o646); err != nil {
		t.Fatal(err)
	}
	if cfg := load(t, main, opt); cfg.Usable() || cfg.Diags[0].Code != CodeOwnership {
		t.Errorf("world-writable main file: %v", cfg.Diags)
	}
	// Without the check (not root) the same files load, except the
	// relative server, which is not found from the test's directory.
	opt.CheckOwnership = false
	if cfg := load(t, main, opt); len(cfg.Accepted()) != 7 {
		t.Errorf("without CheckOwnership: %d accepted\n%v", len(cfg.Accepted()), cfg.Diags)
	}
}
