package parser

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// sandboxSvc is an external service for the sandbox tests.
func sandboxSvc(name string, port int, lines ...string) string {
	return fmt.Sprintf("service %s\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\tport = %d\n\twait = no\n\tuser = nobody\n\t%s\n}\n",
		name, port, strings.Join(lines, "\n\t"))
}

// chrootTree makes a directory with a server that exists only inside it,
// reached through an absolute symbolic link that means something else on
// the host.
func chrootTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write(t, filepath.Join(root, "opt/chal/real"), "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(root, "opt/chal/real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	// On the host, /opt/chal/real does not exist.
	if err := os.Symlink("/opt/chal/real", filepath.Join(root, "bin/chal")); err != nil {
		t.Fatal(err)
	}
	return root
}

func serviceNamed(cfg *service.Config, name string) *service.Service {
	for _, s := range cfg.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// TestSandboxServerInChroot: with a chroot, the server path is the one
// inside it (links resolved there), wherever the chroot comes from: a
// line before the server, a line after it, or the defaults.
func TestSandboxServerInChroot(t *testing.T) {
	root := chrootTree(t)
	text := "defaults\n{\n}\n" +
		sandboxSvc("before", 6000, "chroot = "+root, "server = /bin/chal") +
		sandboxSvc("after", 6001, "server = /bin/chal", "chroot = "+root) +
		sandboxSvc("missing", 6002, "chroot = "+root, "server = /bin/cat") +
		sandboxSvc("unset", 6003, "chroot = /", "server = /bin/chal")
	cfg := parseText(t, text)
	for _, name := range []string{"before", "after"} {
		if s := serviceNamed(cfg, name); s.Status != service.StatusAccepted {
			t.Errorf("%s: %s %v", name, s.Status, s.Reasons)
		}
	}
	if s := serviceNamed(cfg, "missing"); s.Status != service.StatusRejected || s.Reasons[0].Code != CodeServer ||
		!strings.Contains(s.Reasons[0].Msg, "in chroot "+root) {
		t.Errorf("missing: %s %v", s.Status, s.Reasons)
	}
	if s := serviceNamed(cfg, "unset"); s.Status != service.StatusRejected || s.Reasons[0].Code != CodeServer {
		t.Errorf("unset (chroot = / is no chroot: /bin/chal is judged on the host): %s %v", s.Status, s.Reasons)
	}

	withDefaults := "defaults\n{\n\tchroot = " + root + "\n}\n" +
		sandboxSvc("inherits", 6004, "server = /bin/chal") +
		sandboxSvc("optout", 6005, "chroot = /", "server = /bin/cat")
	cfg = parseText(t, withDefaults)
	for _, name := range []string{"inherits", "optout"} {
		if s := serviceNamed(cfg, name); s.Status != service.StatusAccepted {
			t.Errorf("%s: %s %v", name, s.Status, s.Reasons)
		}
	}
	if s := serviceNamed(cfg, "inherits"); s.Sandbox.Chroot != root || s.Origins.At("chroot").Origin != "defaults" {
		t.Errorf("inherits: chroot %q from %v", s.Sandbox.Chroot, s.Origins.At("chroot"))
	}
	if s := serviceNamed(cfg, "optout"); s.Sandbox.Chroot != "" {
		t.Errorf("optout: chroot %q", s.Sandbox.Chroot)
	}
}

// TestSandboxOwnership: as root, a chroot or a seccomp profile that
// someone else could change is refused, like a server.
func TestSandboxOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership checks need root")
	}
	root := chrootTree(t)
	if err := os.Chmod(root, 0o777); err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(t.TempDir(), "open.profile")
	write(t, prof, "include default\n")
	if err := os.Chmod(prof, 0o666); err != nil {
		t.Fatal(err)
	}
	opt := testOptions()
	opt.CheckOwnership = true
	cfg := Parse("t.conf", []byte(sandboxSvc("openroot", 6010, "chroot = "+root, "server = /bin/chal")+
		sandboxSvc("openprofile", 6011, "server = /bin/cat", "seccomp = "+prof)), opt)
	if s := serviceNamed(cfg, "openroot"); s.Status != service.StatusRejected || s.Reasons[0].Code != CodeOwnership {
		t.Errorf("openroot: %s %v", s.Status, s.Reasons)
	}
	if s := serviceNamed(cfg, "openprofile"); s.Status != service.StatusRejected || s.Reasons[0].Code != CodeSeccomp ||
		!strings.Contains(s.Reasons[0].Msg, "writable by everyone") {
		t.Errorf("openprofile: %s %v", s.Status, s.Reasons)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(prof, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg = Parse("t.conf", []byte(sandboxSvc("openroot", 6010, "chroot = "+root, "server = /bin/chal")+
		sandboxSvc("openprofile", 6011, "server = /bin/cat", "seccomp = "+prof)), opt)
	for _, s := range cfg.Services {
		if s.Status != service.StatusAccepted {
			t.Errorf("%s once safe: %s %v", s.Name, s.Status, s.Reasons)
		}
	}
}

// TestSandboxProfileTextInModel: the profile's text as read at load time
// travels in the model, so a later change to the file changes nothing
// until the next reload.
func TestSandboxProfileTextInModel(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "p.profile")
	write(t, prof, "include default\ndeny execve\n")
	cfg := parseText(t, sandboxSvc("a", 6020, "server = /bin/cat", "seccomp = "+prof)+
		sandboxSvc("b", 6021, "server = /bin/cat", "seccomp = "+prof))
	a, b := serviceNamed(cfg, "a"), serviceNamed(cfg, "b")
	if a.Sandbox.Seccomp == nil || a.Sandbox.Seccomp.Text != "include default\ndeny execve\n" || a.Sandbox.Seccomp.File != prof {
		t.Fatalf("a: %+v", a.Sandbox.Seccomp)
	}
	if a.Sandbox.Seccomp == b.Sandbox.Seccomp {
		t.Error("two services share one *Seccomp")
	}
	n := 0
	for _, f := range cfg.Files {
		if f == prof {
			n++
		}
	}
	if n != 1 {
		t.Errorf("profile listed %d times in Files %v", n, cfg.Files)
	}
}

// TestSandboxListsFromDefaults: namespaces, read_only_paths and
// writable_paths take += and -= against the defaults, like only_from.
func TestSandboxListsFromDefaults(t *testing.T) {
	cfg := parseText(t, "defaults\n{\n\tnamespaces = pid mount\n\tread_only_paths = /usr\n}\n"+
		sandboxSvc("a", 6030, "server = /bin/cat", "namespaces += net", "read_only_paths += /etc", "read_only_paths -= /usr")+
		sandboxSvc("b", 6031, "server = /bin/cat"))
	a, b := serviceNamed(cfg, "a"), serviceNamed(cfg, "b")
	if a.Sandbox.Namespaces != service.NsPID|service.NsMount|service.NsNet || strings.Join(a.Sandbox.ReadOnlyPaths, " ") != "/etc" {
		t.Errorf("a: %v %v", a.Sandbox.Namespaces, a.Sandbox.ReadOnlyPaths)
	}
	if b.Sandbox.Namespaces != service.NsPID|service.NsMount || strings.Join(b.Sandbox.ReadOnlyPaths, " ") != "/usr" {
		t.Errorf("b: %v %v", b.Sandbox.Namespaces, b.Sandbox.ReadOnlyPaths)
	}
}

// TestSandboxFillFromDefaults: inetd.conf entries (-inetd_compat) get the
// sandbox of xinetd.conf's defaults through FillFromDefaults.
func TestSandboxFillFromDefaults(t *testing.T) {
	cfg := parseText(t, "defaults\n{\n\tnamespaces = pid mount\n\tseccomp = default\n\tmax_duration = 30\n\tchroot = /usr\n}\n")
	s := &service.Service{Name: "finger", Server: "/bin/cat"}
	FillFromDefaults(&cfg.Defaults, s)
	if s.Sandbox.Namespaces != service.NsPID|service.NsMount || s.Sandbox.Seccomp == nil || s.Sandbox.Seccomp.Profile != "default" ||
		s.MaxDuration != 30 || s.Sandbox.Chroot != "/usr" {
		t.Fatalf("%+v max_duration=%d", s.Sandbox, s.MaxDuration)
	}
	if s.Sandbox.Seccomp == cfg.Defaults.Sandbox.Seccomp {
		t.Error("the service shares the defaults' *Seccomp")
	}
}

// TestSandboxEveryAttributeFromDefaults: each of the nine sandbox
// attributes set only in defaults reaches an xinetd.conf service and, by
// FillFromDefaults, an inetd.conf entry.
func TestSandboxEveryAttributeFromDefaults(t *testing.T) {
	jail := t.TempDir()
	write(t, filepath.Join(jail, "bin/cat"), "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(jail, "bin/cat"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"tmp", "lib"} {
		if err := os.Mkdir(filepath.Join(jail, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := parseText(t, "defaults\n{\n\tchroot = "+jail+"\n\tno_new_privs = yes\n\tnamespaces = pid mount\n\tprivate_tmp = 16m\n"+
		"\tread_only_paths = /lib\n\twritable_paths = -/local\n\tread_only_root = yes\n\tseccomp = default\n\tmax_duration = 30\n}\n"+
		sandboxSvc("x", 6060, "server = /bin/cat"))
	check := func(who string, s *service.Service) {
		t.Helper()
		sb := s.Sandbox
		if sb.Chroot != jail || !sb.NoNewPrivs || sb.Namespaces != service.NsPID|service.NsMount || !sb.PrivateTmp ||
			sb.PrivateTmpSize != 16<<20 || strings.Join(sb.ReadOnlyPaths, " ") != "/lib" || strings.Join(sb.WritablePaths, " ") != "-/local" ||
			!sb.ReadOnlyRoot || sb.Seccomp == nil || sb.Seccomp.Profile != "default" || s.MaxDuration != 30 {
			t.Errorf("%s: %+v max_duration=%d", who, sb, s.MaxDuration)
		}
		for _, attr := range service.SandboxAttrs {
			if o := s.Origins.At(attr); o.Origin != "defaults" {
				t.Errorf("%s: origin of %s is %+v, want defaults", who, attr, o)
			}
		}
	}
	x := serviceNamed(cfg, "x")
	if x.Status != service.StatusAccepted {
		t.Fatalf("x: %s %v", x.Status, x.Reasons)
	}
	check("xinetd.conf service", x)
	in := &service.Service{Name: "finger", Server: "/bin/cat"}
	FillFromDefaults(&cfg.Defaults, in)
	check("inetd.conf entry", in)
}

// TestSandboxServerHiddenByPrivateTmp: a server under /tmp cannot be
// exec'd once private_tmp has mounted an empty tmpfs there.
func TestSandboxServerHiddenByPrivateTmp(t *testing.T) {
	dir := t.TempDir() // under /tmp
	srv := filepath.Join(dir, "srv")
	write(t, srv, "#!/bin/sh\n")
	if err := os.Chmod(srv, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := parseText(t, sandboxSvc("hidden", 6040, "server = "+srv, "private_tmp = yes")+sandboxSvc("fine", 6041, "server = "+srv))
	if s := serviceNamed(cfg, "hidden"); s.Status != service.StatusRejected || s.Reasons[0].Code != CodeSandbox ||
		!strings.Contains(s.Reasons[0].Msg, "private_tmp replaces") {
		t.Errorf("hidden: %s %v", s.Status, s.Reasons)
	}
	if s := serviceNamed(cfg, "fine"); s.Status != service.StatusAccepted {
		t.Errorf("fine: %s %v", s.Status, s.Reasons)
	}
}

// TestSandboxPathWithLink: a mount path with a symbolic link in it would
// fail the start (the child refuses links there); -t says so first.
func TestSandboxPathWithLink(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	cfg := parseText(t, sandboxSvc("linked", 6050, "server = /bin/cat", "writable_paths = "+filepath.Join(dir, "link"))+
		sandboxSvc("plain", 6051, "server = /bin/cat", "writable_paths = "+filepath.Join(dir, "real")))
	if s := serviceNamed(cfg, "linked"); s.Status != service.StatusRejected || s.Reasons[0].Code != CodeSandbox ||
		!strings.Contains(s.Reasons[0].Msg, "symbolic link") {
		t.Errorf("linked: %s %v", s.Status, s.Reasons)
	}
	if s := serviceNamed(cfg, "plain"); s.Status != service.StatusAccepted {
		t.Errorf("plain: %s %v", s.Status, s.Reasons)
	}
}

// TestSandboxProfileBareFileName: a seccomp value without a '/' that is
// no built-in profile names a file beside the configuration file; one
// that names neither is an error at the value.
func TestSandboxProfileBareFileName(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "chal.seccomp"), "include default\ndeny execve\n")
	conf := filepath.Join(dir, "xinetd.conf")
	write(t, conf, sandboxSvc("a", 6050, "server = /bin/cat", "seccomp = chal.seccomp")+
		sandboxSvc("b", 6051, "server = /bin/cat", "seccomp = nosuch.seccomp"))
	cfg := load(t, conf, testOptions())
	if a := serviceNamed(cfg, "a"); a.Status != service.StatusAccepted || a.Sandbox.Seccomp == nil ||
		a.Sandbox.Seccomp.File != filepath.Join(dir, "chal.seccomp") || a.Sandbox.Seccomp.Text != "include default\ndeny execve\n" {
		t.Errorf("a: %s %v %+v", a.Status, a.Reasons, a.Sandbox.Seccomp)
	}
	b := serviceNamed(cfg, "b")
	if b.Status != service.StatusRejected || len(b.Reasons) == 0 || b.Reasons[0].Code != CodeSeccomp ||
		b.Reasons[0].Pos.Line != 19 || !strings.Contains(b.Reasons[0].Msg, `unknown seccomp profile "nosuch.seccomp"`) {
		t.Errorf("b: %s %v", b.Status, b.Reasons)
	}
}
