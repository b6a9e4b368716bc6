package daemon

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/service"
)

func boolp(b bool) *bool { return &b }

func TestKeyFor(t *testing.T) {
	tcp := &service.Service{SocketType: service.SockStream, Port: 7}
	cases := []struct {
		name string
		svc  *service.Service
		addr netip.Addr
		want sockKey
	}{
		{"wildcard is dual-stack IPv6", tcp, netip.Addr{}, sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_INET6, port: 7, v6only: 0}},
		{"IPv4 flag", &service.Service{SocketType: service.SockStream, Port: 7, Family: service.FamilyIPv4}, netip.Addr{},
			sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_INET, port: 7, v6only: -1}},
		{"v6only = no means dual-stack, unlike xinetd", &service.Service{SocketType: service.SockStream, Port: 7, V6Only: boolp(false)}, netip.Addr{},
			sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_INET6, port: 7, v6only: 0}},
		{"v6only = yes", &service.Service{SocketType: service.SockDgram, Port: 7, V6Only: boolp(true)}, netip.Addr{},
			sockKey{sotype: unix.SOCK_DGRAM, family: unix.AF_INET6, port: 7, v6only: 1}},
		{"bound IPv4 address", tcp, netip.MustParseAddr("127.0.0.1"),
			sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_INET, addr: netip.MustParseAddr("127.0.0.1"), port: 7, v6only: -1}},
		{"bound IPv6 address", tcp, netip.MustParseAddr("::1"),
			sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_INET6, addr: netip.MustParseAddr("::1"), port: 7, v6only: 0}},
		{"unix socket", &service.Service{SocketType: service.SockStream, Family: service.FamilyUnix, UnixPath: "/run/x.sock"}, netip.Addr{},
			sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_UNIX, path: "/run/x.sock", v6only: -1}},
	}
	for _, c := range cases {
		if got := keyFor(c.svc, c.addr); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
	if s := keyFor(tcp, netip.MustParseAddr("::1")).String(); s != "tcp/[::1]:7" {
		t.Errorf("String = %q", s)
	}
}

func TestSameListen(t *testing.T) {
	a := &service.Service{Port: 7, SocketType: service.SockStream, Protocol: "tcp", Bind: service.Bind{Text: "127.0.0.1"}}
	b := *a
	b.Server = "/bin/other" // servers and limits may change under a kept socket
	b.Instances = 3
	if !sameListen(a, &b) {
		t.Error("changing the server must keep the socket")
	}
	c := *a
	c.Port = 8
	d := *a
	d.V6Only = boolp(true)
	e := *a
	e.Bind.Text = "127.0.0.2"
	for _, x := range []*service.Service{&c, &d, &e} {
		if sameListen(a, x) {
			t.Errorf("%+v must need a new socket", x)
		}
	}
}

func TestOpenSockBacklogAndV6Only(t *testing.T) {
	s := &service.Service{ID: "t", SocketType: service.SockStream, Protocol: "tcp", V6Only: boolp(true)}
	k := keyFor(s, netip.MustParseAddr("::1"))
	sk, err := openSock(s, k, 7)
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer sk.Close()
	got, err := sockKeyOfFD(sk.fd())
	if err != nil {
		t.Fatal(err)
	}
	if got.family != unix.AF_INET6 || got.v6only != 1 || got.port == 0 || got.addr != netip.MustParseAddr("::1") {
		t.Errorf("socket reads back as %+v", got)
	}
	if v, _ := unix.GetsockoptInt(sk.fd(), unix.SOL_SOCKET, unix.SO_REUSEADDR); v != 1 {
		t.Error("SO_REUSEADDR not set")
	}
}

func TestTakeActivatedMatchesWildcardByPort(t *testing.T) {
	d := &Daemon{activated: map[sockKey]*sock{}}
	v4 := sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_INET, addr: netip.MustParseAddr("127.0.0.1"), port: 9, v6only: -1}
	d.activated[v4] = &sock{key: v4}
	if got := d.takeActivated(sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_INET6, addr: netip.MustParseAddr("::1"), port: 9}); got != nil {
		t.Error("a service bound to ::1 must not take 127.0.0.1's socket")
	}
	if got := d.takeActivated(sockKey{sotype: unix.SOCK_DGRAM, family: unix.AF_INET6, port: 9}); got != nil {
		t.Error("socket types must match")
	}
	if got := d.takeActivated(sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_INET6, port: 9, v6only: 0}); got == nil {
		t.Error("a wildcard service must take systemd's socket for its port")
	}
	if len(d.activated) != 0 {
		t.Error("a taken socket must leave the pool")
	}
}

func TestBackoffIsBounded(t *testing.T) {
	var d time.Duration
	for i := 0; i < 20; i++ {
		d = backoff(d)
	}
	if d != time.Second {
		t.Errorf("backoff settles at %v, want 1s", d)
	}
	if backoff(0) != 5*time.Millisecond {
		t.Error("backoff starts at 5ms")
	}
}

func TestAddrListAllows(t *testing.T) {
	l := service.AddrList{Set: true, Entries: []service.AddrEntry{{Kind: service.AddrNet, Prefix: netip.MustParsePrefix("127.0.0.0/8")}}}
	if !addrListAllows(l, netip.MustParseAddr("127.1.2.3")) || addrListAllows(l, netip.MustParseAddr("10.0.0.1")) {
		t.Error("metrics_only_from matching")
	}
	if !addrListAllows(service.AddrList{}, netip.MustParseAddr("10.0.0.1")) {
		t.Error("no list allows everyone")
	}
	if addrListAllows(service.AddrList{Set: true}, netip.MustParseAddr("127.0.0.1")) {
		t.Error("an empty list allows no one")
	}
}

func TestActivationEnvStripped(t *testing.T) {
	got := activationEnvStripped([]string{"PATH=/bin", "LISTEN_PID=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=a", "NOTIFY_SOCKET=/x", "HOME=/"})
	if strings.Join(got, " ") != "PATH=/bin HOME=/" {
		t.Errorf("servers would inherit systemd's variables: %v", got)
	}
}

func TestPidFileRefusesLiveGxinetdOnly(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.pid")
	// A stale pidfile (pid 1 is init, not gxinetd) is replaced.
	os.WriteFile(p, []byte("1\n"), 0o644)
	if err := writePidFile(p); err != nil {
		t.Fatalf("stale pidfile: %v", err)
	}
	if got, _ := ReadPidFile(p); got != os.Getpid() {
		t.Fatalf("pidfile holds %d", got)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("pidfile mode %v", fi.Mode())
	}
	if _, err := ReadPidFile(filepath.Join(dir, "none")); err == nil {
		t.Error("missing pidfile must be an error")
	}
	os.WriteFile(p, []byte("garbage"), 0o644)
	if _, err := ReadPidFile(p); err == nil {
		t.Error("garbage pidfile must be an error")
	}
}

func TestCheckExitStatus(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.conf")
	os.WriteFile(good, []byte("service echo\n{\n\ttype = INTERNAL UNLISTED\n\tid = e\n\tsocket_type = stream\n\tprotocol = tcp\n\tport = 10007\n\twait = no\n}\n"), 0o644)
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("service echo\n{\n\ttype = INTERNAL UNLISTED\n\tsocket_type = stream\n\tprotocol = tcp\n\tport = 99999\n\twait = no\n}\n"), 0o644)
	var out, errb bytes.Buffer
	if st := Check(&Options{ConfigFile: good}, &out, &errb, false); st != 0 {
		t.Errorf("good configuration: status %d\n%s", st, out.String())
	}
	out.Reset()
	if st := Check(&Options{ConfigFile: bad}, &out, &errb, false); st != 1 || !strings.Contains(out.String(), bad+":6:") {
		t.Errorf("bad configuration: status %d\n%s", st, out.String())
	}
	out.Reset()
	if st := Check(&Options{ConfigFile: filepath.Join(dir, "missing.conf")}, &out, &errb, false); st != 1 {
		t.Errorf("missing file: status %d", st)
	}
}

func TestInetdCompatAddsEntriesXinetdWins(t *testing.T) {
	dir := t.TempDir()
	xconf := filepath.Join(dir, "xinetd.conf")
	os.WriteFile(xconf, []byte("service daytime\n{\n\ttype = INTERNAL UNLISTED\n\tid = dt\n\tsocket_type = stream\n\tprotocol = tcp\n\tport = 10013\n\twait = no\n}\n"), 0o644)
	iconf := filepath.Join(dir, "inetd.conf")
	os.WriteFile(iconf, []byte("10013\tstream\ttcp\tnowait\troot\t/bin/cat\tcat\n10014\tstream\ttcp\tnowait\troot\t/bin/cat\tcat\n"), 0o644)
	cfg := Load(&Options{ConfigFile: xconf, InetdCompat: true, InetdCompatFile: iconf})
	ports := map[int]string{}
	for _, s := range cfg.Accepted() {
		ports[s.Port] = string(s.Language)
	}
	if ports[10013] != "xinetd" || ports[10014] != "inetd" {
		t.Fatalf("accepted by port: %v\n%v", ports, cfg.Diags)
	}
	for _, s := range cfg.Accepted() {
		if s.Port == 10014 && s.CPS.Rate != 50 {
			t.Errorf("inetd_compat entries get the xinetd defaults' scalars (cps 50 10), got %+v", s.CPS)
		}
	}
}

func TestTrimOriginsKeepsWhatTheDumpAsks(t *testing.T) {
	s := &service.Service{Origins: service.OriginsOf(map[string]service.Source{
		"port":      {File: "a", Line: 3},
		"instances": {Origin: "defaults"},
		"cps":       {Origin: "default"},
		"bind":      {Origin: "flag"},
	})}
	trimOrigins(&service.Config{Services: []*service.Service{s}})
	if s.Origins.Len() != 2 || s.Origins.At("port").Line != 3 || s.Origins.At("bind").Origin != "flag" {
		t.Errorf("trimmed origins = %+v; want port and bind (set by the entry or a flag) only", s.Origins)
	}
}
