package daemon

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/spawn"
)

// TestCheckSaysWhatTheHostCannot: a service whose sandbox this host
// cannot provide is rejected with E-SANDBOX-HOST at the attribute at
// fault, in the check mode and so in every load; services without a
// sandbox and those the host can serve are untouched, and so are
// inetd.conf entries that got the sandbox from xinetd.conf's defaults.
func TestCheckSaysWhatTheHostCannot(t *testing.T) {
	defer func(f func(*service.Sandbox) *spawn.SupportError) { sandboxSupport = f }(sandboxSupport)
	sandboxSupport = func(sb *service.Sandbox) *spawn.SupportError {
		if sb.Namespaces.Has(service.NsNet) {
			return &spawn.SupportError{Attr: "namespaces", Err: errors.New("this host cannot make net namespaces: operation not permitted")}
		}
		return nil
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "xinetd.conf")
	svc := func(name, port, extra string) string {
		return "service " + name + "\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\tprotocol = tcp\n\tport = " + port +
			"\n\twait = no\n\tuser = nobody\n\tserver = /bin/cat\n" + extra + "}\n"
	}
	os.WriteFile(conf, []byte("defaults\n{\n\tmax_duration = 5\n}\n"+svc("isolated", "10100", "\tnamespaces = pid net\n")+
		svc("fine", "10101", "\tnamespaces = pid\n")+svc("plain", "10102", "")), 0o644)
	var out, errb bytes.Buffer
	if st := Check(&Options{ConfigFile: conf}, &out, &errb, false); st != 1 {
		t.Errorf("status %d", st)
	}
	want := conf + ":14:2: error E-SANDBOX-HOST: service isolated: namespaces: this host cannot make net namespaces: operation not permitted - DISABLING"
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "2 services accepted, 1 rejected") {
		t.Errorf("check output:\n%s\nwant the line\n%s", out.String(), want)
	}

	iconf := filepath.Join(dir, "inetd.conf")
	os.WriteFile(conf, []byte("defaults\n{\n\tnamespaces = net\n}\n"), 0o644)
	os.WriteFile(iconf, []byte("10103\tstream\ttcp\tnowait\troot\t/bin/cat\tcat\n"), 0o644)
	cfg := Load(&Options{ConfigFile: conf, InetdCompat: true, InetdCompatFile: iconf})
	if len(cfg.Services) != 1 || cfg.Services[0].Status != service.StatusRejected {
		t.Fatalf("inetd entry with the defaults' net namespace on a host without: %+v\n%v", cfg.Services, cfg.Diags)
	}
}
