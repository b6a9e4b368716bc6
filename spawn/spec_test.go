package spawn

import (
	"io"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
)

// testDB has alice (1000, primary 1000, member of users, spawntest) and
// nobody (65534, member of spawntest and other).
var testDB = &sysdb.DB{Root: "testdata"}

var rootHost = hostEnv{euid: 0, nrOpen: 1 << 20, umask: 0o022}

func user(name string, id int) *service.Cred { return &service.Cred{Name: name, ID: id} }

func TestBuildCred(t *testing.T) {
	cases := []struct {
		name    string
		user    *service.Cred
		group   *service.Cred
		groups  bool
		euid    int
		want    *Cred
		wantErr string
	}{
		{name: "no-user-no-group", want: nil},
		{name: "nobody", user: user("nobody", 65534), want: &Cred{UID: 65534, GID: 65534}},
		{name: "nobody-groups-yes", user: user("nobody", 65534), groups: true,
			want: &Cred{UID: 65534, GID: 65534, Groups: []uint32{65534, 4242, 4343}}},
		{name: "root-group-daemon", user: user("root", 0), group: user("daemon", 1), want: &Cred{UID: 0, GID: 1}},
		{name: "numeric-unknown", user: user("12345", 12345), want: &Cred{UID: 12345, GID: 12345}},
		// A numeric user takes its own number as gid even when passwd
		// knows a different primary group.
		{name: "numeric-known", user: user("1000", 1000), want: &Cred{UID: 1000, GID: 1000}},
		// initgroups uses the passwd primary group, whatever `group` says.
		{name: "alice-group-users-groups-yes", user: user("alice", 1000), group: user("users", 100), groups: true,
			want: &Cred{UID: 1000, GID: 100, Groups: []uint32{1000, 100, 4242}}},
		{name: "group-only", group: user("daemon", 1), want: &Cred{UID: 0, GID: uint32(syscall.Getegid())}},
		{name: "groups-yes-unknown-uid", user: user("12345", 12345), groups: true,
			wantErr: "spawn: getpwuid 12345: no such user"},
		{name: "groups-yes-without-user", group: user("daemon", 1), groups: true, want: &Cred{UID: 0, GID: 1}},
		{name: "not-root-other-user", user: user("nobody", 65534), euid: 1000, want: nil},
		{name: "not-root-same-user", user: user("alice", 1000), group: user("users", 100), euid: 1000, want: nil},
		{name: "not-root-group-only", group: user("daemon", 1), euid: 1000, want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := &service.Service{ID: "s", User: tc.user, Group: tc.group, Groups: tc.groups}
			got, err := buildCred(svc, testDB, tc.euid)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "group-only" {
				tc.want.GID = 1
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	// Not root: user/group are ineffective (xinetd's documented behaviour).
	if c, err := buildCred(&service.Service{User: user("nobody", 65534)}, testDB, 1000); c != nil || err != nil {
		t.Errorf("non-root: cred %+v, err %v; want none, no error", c, err)
	}
}

var (
	mapped    = netip.MustParseAddrPort("[::ffff:127.0.0.1]:40000")
	localMapd = netip.MustParseAddrPort("[::ffff:127.0.0.1]:2323")
	v6        = netip.MustParseAddrPort("[::1]:40001")
	local6    = netip.MustParseAddrPort("[::1]:2323")
)

func TestBuildEnv(t *testing.T) {
	start := []string{"PATH=/bin", "HOME=/root", "FOO=start", "REMOTE_HOST=spoofed", "LANG=C"}
	tcpConn := Conn{Remote: mapped, Local: localMapd, RemoteKnown: true}
	tcpVars := []string{"REMOTE_HOST=::ffff:127.0.0.1", "REMOTE_PORT=40000", "LOCAL_HOST=::ffff:127.0.0.1", "LOCAL_PORT=2323",
		"PROTO=TCP", "TCPREMOTEIP=127.0.0.1", "TCPREMOTEPORT=40000", "TCPLOCALIP=127.0.0.1", "TCPLOCALPORT=2323"}
	cases := []struct {
		name     string
		passenv  []string
		env      []string
		sock     service.SocketType
		proto    string
		family   service.Family
		unixPath string
		conn     Conn
		want     []string
	}{
		{name: "full-start-env", conn: tcpConn,
			want: append([]string{"PATH=/bin", "HOME=/root", "FOO=start", "LANG=C"}, tcpVars...)},
		{name: "env-replaces-in-place", env: []string{"FOO=override", "X=1"}, conn: tcpConn,
			want: append([]string{"PATH=/bin", "HOME=/root", "FOO=override", "LANG=C", "X=1"}, tcpVars...)},
		{name: "passenv-subset", passenv: []string{"FOO", "NOPE", "LANG"}, env: []string{"FOO=override", "Z=3"}, conn: tcpConn,
			want: append([]string{"FOO=override", "LANG=C", "Z=3"}, tcpVars...)},
		{name: "passenv-empty", passenv: []string{}, conn: tcpConn, want: tcpVars},
		{name: "env-cannot-fake-connection", passenv: []string{}, env: []string{"TCPREMOTEIP=10.9.9.9", "REMOTE_PORT=1"}, conn: tcpConn,
			want: tcpVars},
		{name: "wait-stream-unknown-client", passenv: []string{}, conn: Conn{Local: local6},
			want: []string{"REMOTE_HOST=<no address>", "LOCAL_HOST=::1", "LOCAL_PORT=2323", "PROTO=TCP", "TCPLOCALIP=::1", "TCPLOCALPORT=2323"}},
		{name: "nothing-known", passenv: []string{}, want: []string{"REMOTE_HOST=<no address>", "PROTO=TCP"}},
		{name: "udp", passenv: []string{"HOME"}, sock: service.SockDgram, proto: "udp", conn: Conn{Remote: v6, Local: local6, RemoteKnown: true},
			want: []string{"HOME=/root", "REMOTE_HOST=::1", "REMOTE_PORT=40001", "LOCAL_HOST=::1", "LOCAL_PORT=2323"}},
		{name: "unix", passenv: []string{"HOME"}, family: service.FamilyUnix, unixPath: "/run/x.sock",
			want: []string{"HOME=/root", "PROTO=UNIX", "UNIXLOCALPATH=/run/x.sock"}},
		{name: "unix-peer", passenv: []string{"HOME"}, family: service.FamilyUnix, unixPath: "/run/x.sock",
			conn: Conn{Peer: &service.PeerCred{PID: 4242, UID: 1000, GID: 100}},
			want: []string{"HOME=/root", "PROTO=UNIX", "UNIXLOCALPATH=/run/x.sock", "UNIXREMOTEEUID=1000", "UNIXREMOTEEGID=100", "UNIXREMOTEPID=4242"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sock, proto := tc.sock, tc.proto
			if sock == service.SockUnset {
				sock, proto = service.SockStream, "tcp"
			}
			svc := &service.Service{PassEnv: tc.passenv, Env: tc.env, SocketType: sock, Protocol: proto, Family: tc.family, UnixPath: tc.unixPath}
			startCopy := slices.Clone(start)
			got := BuildEnv(svc, tc.conn, start)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n  %q\nwant\n  %q", got, tc.want)
			}
			if !slices.Equal(start, startCopy) {
				t.Errorf("start-up environment modified: %q", start)
			}
			// The daemon's per-service template gives the same, request
			// after request.
			svc.Server = "/bin/true"
			tmpl, err := newTemplate(svc, start, testDB, rootHost)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				if got := tmpl.Spec(tc.conn).Env; !slices.Equal(got, tc.want) {
					t.Errorf("template, request %d: got\n  %q\nwant\n  %q", i, got, tc.want)
				}
			}
		})
	}
}

func TestBuildSpec(t *testing.T) {
	i := func(n int) *int { return &n }
	u := func(n uint32) *uint32 { return &n }
	cases := []struct {
		name  string
		svc   service.Service
		host  hostEnv
		check func(t *testing.T, s Spec)
	}{
		{"argv-as-built", service.Service{Server: "/usr/sbin/in.fingerd", Argv: []string{"in.fingerd", "-w"}}, rootHost,
			func(t *testing.T, s Spec) {
				if s.Path != "/usr/sbin/in.fingerd" || !slices.Equal(s.Argv, []string{"in.fingerd", "-w"}) || s.Dir != "/" {
					t.Errorf("%+v", s)
				}
			}},
		{"argv-nameinargs", service.Service{Server: "/usr/sbin/tcpd", Argv: []string{"in.ftpd", "-l"}}, rootHost,
			func(t *testing.T, s Spec) {
				if s.Path != "/usr/sbin/tcpd" || !slices.Equal(s.Argv, []string{"in.ftpd", "-l"}) {
					t.Errorf("%+v", s)
				}
			}},
		{"argv-empty", service.Service{Server: "/usr/sbin/tcpd"}, rootHost,
			func(t *testing.T, s Spec) {
				if !slices.Equal(s.Argv, []string{"tcpd"}) {
					t.Errorf("%q", s.Argv)
				}
			}},
		{"defaults", service.Service{Server: "/bin/true"}, rootHost,
			func(t *testing.T, s Spec) {
				want := []Rlimit{{Resource: unix.RLIMIT_NOFILE, Value: InheritHard}}
				if s.Umask != -1 || s.Nice != nil || s.Cred != nil || !reflect.DeepEqual(s.Rlimits, want) {
					t.Errorf("%+v", s)
				}
			}},
		{"umask-and-nice", service.Service{Server: "/bin/true", Umask: u(0o1027), Nice: i(-3)}, rootHost,
			func(t *testing.T, s Spec) {
				if s.Umask != 0o027 || s.Nice == nil || *s.Nice != -3 {
					t.Errorf("%+v", s)
				}
			}},
		{"nice-zero", service.Service{Server: "/bin/true", Nice: i(0)}, rootHost,
			func(t *testing.T, s Spec) {
				if s.Nice != nil {
					t.Errorf("nice %d", *s.Nice)
				}
			}},
		{"daemon-umask-gets-022", service.Service{Server: "/bin/true"}, hostEnv{nrOpen: 1 << 20, umask: 0o002},
			func(t *testing.T, s Spec) {
				if s.Umask != 0o022 {
					t.Errorf("umask %o", s.Umask)
				}
			}},
		{"daemon-umask-077-kept", service.Service{Server: "/bin/true"}, hostEnv{nrOpen: 1 << 20, umask: 0o077},
			func(t *testing.T, s Spec) {
				if s.Umask != -1 {
					t.Errorf("umask %o", s.Umask)
				}
			}},
		{"rlimits", service.Service{Server: "/bin/true", Rlim: service.RlimitsOf(service.Rlimits{
			AS:    service.Rlimit{Set: true, Value: 1 << 30},
			CPU:   service.Rlimit{Set: true, Infinity: true},
			Data:  service.Rlimit{Set: true, Value: 0}, // 0 = not set
			RSS:   service.Rlimit{Set: true, Value: 1 << 20},
			Stack: service.Rlimit{Set: true, Value: 8 << 20},
			Files: service.Rlimit{Set: true, Value: 100},
		})}, rootHost,
			func(t *testing.T, s Spec) {
				want := []Rlimit{{Resource: unix.RLIMIT_NOFILE, Value: 100, BestEffort: true}, {Resource: unix.RLIMIT_AS, Value: 1 << 30}, {Resource: unix.RLIMIT_CPU, Value: unix.RLIM_INFINITY},
					{Resource: unix.RLIMIT_RSS, Value: 1 << 20}, {Resource: unix.RLIMIT_STACK, Value: 8 << 20}}
				if !reflect.DeepEqual(s.Rlimits, want) {
					t.Errorf("got %v, want %v", s.Rlimits, want)
				}
			}},
	}
	for _, files := range []struct {
		name string
		lim  service.Rlimit
		want uint64
	}{
		{"files-unlimited", service.Rlimit{Set: true, Infinity: true}, 1 << 20},
		{"files-above-nr-open", service.Rlimit{Set: true, Value: 1<<20 + 1}, 1 << 20},
		{"files-at-nr-open", service.Rlimit{Set: true, Value: 1 << 20}, 1 << 20},
		{"files-small", service.Rlimit{Set: true, Value: 7}, 7},
	} {
		cases = append(cases, struct {
			name  string
			svc   service.Service
			host  hostEnv
			check func(t *testing.T, s Spec)
		}{files.name, service.Service{Server: "/bin/true", Rlim: service.RlimitsOf(service.Rlimits{Files: files.lim})}, rootHost,
			func(t *testing.T, s Spec) {
				want := []Rlimit{{Resource: unix.RLIMIT_NOFILE, Value: files.want, BestEffort: true}}
				if !reflect.DeepEqual(s.Rlimits, want) {
					t.Errorf("got %v, want %v", s.Rlimits, want)
				}
			}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := buildSpec(&tc.svc, Conn{}, nil, testDB, tc.host)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
	if _, err := buildSpec(&service.Service{ID: "x"}, Conn{}, nil, testDB, rootHost); err == nil ||
		err.Error() != "spawn: service x: no server to execute" {
		t.Errorf("no server: %v", err)
	}
	if sp, err := buildSpec(&service.Service{Server: "/bin/true", User: user("nobody", 65534)}, Conn{}, nil, testDB,
		hostEnv{euid: 1000, nrOpen: 1 << 20}); err != nil || sp.Cred != nil {
		t.Errorf("non-root: spec cred %+v, err %v; want the daemon's own credentials", sp.Cred, err)
	}
}

// TestBuildSpecStart runs what BuildSpec makes for real: a TCP client,
// the server's argv and environment, and initgroups from a test group
// file.
// TestCheckLimits: the check mode's warnings for rlimit_files, at the
// attribute's position.
func TestCheckLimits(t *testing.T) {
	at := service.Source{File: "/etc/xinetd.d/x", Line: 7, Col: 2}
	svc := func(l service.Rlimit) *service.Service {
		return &service.Service{ID: "x", Src: service.Source{File: "/etc/xinetd.d/x", Line: 1, Col: 1},
			Origins: service.OriginsOf(map[string]service.Source{"rlimit_files": at}), Rlim: service.RlimitsOf(service.Rlimits{Files: l})}
	}
	unlimited := service.Rlimit{Set: true, Infinity: true}
	cases := []struct {
		name     string
		svc      *service.Service
		hard     uint64
		mayRaise bool
		want     string
	}{
		{"unset", svc(service.Rlimit{}), 1024, false, ""},
		{"zero-is-unset", svc(service.Rlimit{Set: true}), 1024, false, ""},
		{"unlimited-root", svc(unlimited), 20000, true,
			"/etc/xinetd.d/x:7:2: warning W-RLIMIT: service x: rlimit_files: UNLIMITED is more than the kernel allows any process (fs.nr_open = 1048576): servers get 1048576"},
		{"above-nr-open-root", svc(service.Rlimit{Set: true, Value: 2 << 20}), 20000, true,
			"/etc/xinetd.d/x:7:2: warning W-RLIMIT: service x: rlimit_files: 2097152 is more than the kernel allows any process (fs.nr_open = 1048576): servers get 1048576"},
		{"unlimited-no-cap", svc(unlimited), 20000, false,
			"/etc/xinetd.d/x:7:2: warning W-RLIMIT: service x: rlimit_files: UNLIMITED is more than gxinetd's own hard limit (20000), which it may not raise (no CAP_SYS_RESOURCE): servers get 20000"},
		{"above-hard-no-cap", svc(service.Rlimit{Set: true, Value: 50000}), 20000, false,
			"/etc/xinetd.d/x:7:2: warning W-RLIMIT: service x: rlimit_files: 50000 is more than gxinetd's own hard limit (20000), which it may not raise (no CAP_SYS_RESOURCE): servers get 20000"},
		{"below-hard-no-cap", svc(service.Rlimit{Set: true, Value: 20000}), 20000, false, ""},
		{"above-hard-root", svc(service.Rlimit{Set: true, Value: 50000}), 20000, true, ""},
		{"no-origin", &service.Service{ID: "y", Src: service.Source{File: "f", Line: 3, Col: 1}, Rlim: service.RlimitsOf(service.Rlimits{Files: unlimited})}, 1 << 20, true,
			"f:3:1: warning W-RLIMIT: service y: rlimit_files: UNLIMITED is more than the kernel allows any process (fs.nr_open = 1048576): servers get 1048576"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range checkLimits(tc.svc, 1<<20, tc.hard, tc.mayRaise) {
				got = append(got, d.String())
			}
			var want []string
			if tc.want != "" {
				want = []string{tc.want}
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %q\nwant %q", got, want)
			}
		})
	}
}

// TestCheckLimitsProbesOnlyWhenSet: the daemon calls CheckLimits for
// every service it loads; the host's limits (two system calls) are asked
// only for a service that sets rlimit_files, and its warning still comes.
func TestCheckLimitsProbesOnlyWhenSet(t *testing.T) {
	probes := 0
	old := hostLimits
	hostLimits = func() (uint64, bool) { probes++; return 100, false }
	t.Cleanup(func() { hostLimits = old })
	plain := &service.Service{ID: "p", Server: "/bin/cat"}
	zero := &service.Service{ID: "z", Rlim: service.RlimitsOf(service.Rlimits{Files: service.Rlimit{Set: true}})}
	for _, s := range []*service.Service{plain, zero} {
		if d := CheckLimits(s); len(d) != 0 {
			t.Errorf("%s: got %v, want nothing", s.ID, d)
		}
	}
	if probes != 0 {
		t.Errorf("%d probes of the host's limits for services without rlimit_files, want 0", probes)
	}
	set := &service.Service{ID: "s", Src: service.Source{File: "f", Line: 1, Col: 1},
		Rlim: service.RlimitsOf(service.Rlimits{Files: service.Rlimit{Set: true, Value: 500}})}
	d := CheckLimits(set)
	if probes != 1 || len(d) != 1 || !strings.Contains(d[0].String(), "hard limit (100)") {
		t.Errorf("rlimit_files = 500 over a hard limit of 100: %d probes, %v; want 1 probe and the W-RLIMIT warning", probes, d)
	}
}

func TestBuildSpecStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start := []string{"PATH=/usr/bin:/bin", "FOO=start", "LANG=C.UTF-8"}
	spec := serverSpec(t, "whoami") // marks the server used
	cases := []struct {
		name string
		svc  service.Service
		root bool
	}{
		{"plain-argv", service.Service{Argv: []string{"whoami-server", "a", "b"}, PassEnv: []string{"FOO"},
			Env: []string{"FOO=override", spec.Env[0]}}, false},
		{"nameinargs", service.Service{Argv: []string{"myname", "arg1"}, Env: []string{spec.Env[0]}}, false},
		{"nobody-initgroups", service.Service{Argv: []string{"x"}, PassEnv: []string{}, Env: []string{spec.Env[0]},
			User: user("nobody", 65534), Groups: true, Nice: func() *int { n := 2; return &n }()}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				needRoot(t)
			}
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			conn := Conn{
				Remote:      sc.RemoteAddr().(*net.TCPAddr).AddrPort(),
				Local:       sc.LocalAddr().(*net.TCPAddr).AddrPort(),
				RemoteKnown: true,
			}
			f, err := sc.(*net.TCPConn).File()
			sc.Close()
			if err != nil {
				t.Fatal(err)
			}
			svc := tc.svc
			svc.Server = serverBin
			svc.SocketType, svc.Protocol = service.SockStream, "tcp"
			s, err := BuildSpec(&svc, conn, start, testDB)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Start(s, f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			b, err := io.ReadAll(c)
			out := string(b)
			if err != nil {
				t.Error(err)
			}
			if st, err := p.Wait(); err != nil || !succeeded(st) {
				t.Fatalf("%v %v\n%s", st, err, out)
			}
			kv := parseKV(out)
			if !slices.Equal(kv["env"], s.Env) {
				t.Errorf("server environment\n  %q\nwant\n  %q", kv["env"], s.Env)
			}
			var argv []string
			for i := 0; i < 10 && len(kv["argv"+strconv.Itoa(i)]) == 1; i++ {
				argv = append(argv, kv["argv"+strconv.Itoa(i)][0])
			}
			if !slices.Equal(argv, svc.Argv) {
				t.Errorf("argv %q, want %q", argv, svc.Argv)
			}
			client := c.LocalAddr().(*net.TCPAddr)
			for _, want := range []string{"REMOTE_HOST=127.0.0.1", "TCPREMOTEIP=127.0.0.1",
				"REMOTE_PORT=" + strconv.Itoa(client.Port), "TCPREMOTEPORT=" + strconv.Itoa(client.Port), "PROTO=TCP",
				"LOCAL_PORT=" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)} {
				if !slices.Contains(kv["env"], want) {
					t.Errorf("environment lacks %s", want)
				}
			}
			var lim unix.Rlimit
			unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
			if got, want := one(t, kv, "limit Max open files"), strconv.Itoa(int(lim.Max))+" "+strconv.Itoa(int(lim.Max)); got != want {
				t.Errorf("open files %q, want %q (the daemon's hard limit)", got, want)
			}
			if tc.root {
				if one(t, kv, "uid") != "65534" || one(t, kv, "gid") != "65534" || one(t, kv, "groups") != "4242 4343 65534" {
					t.Errorf("credentials uid %s gid %s groups %s", kv["uid"], kv["gid"], kv["groups"])
				}
				if got, want := one(t, kv, "nice"), strconv.Itoa(ourNice(t)+2); got != want {
					t.Errorf("nice %s, want %s", got, want)
				}
			}
		})
	}
}

// TestUnixPeerEnvCannotBeSpoofed: a start-up variable named like a
// peer variable never reaches the server beside the real one.
func TestUnixPeerEnvCannotBeSpoofed(t *testing.T) {
	svc := &service.Service{SocketType: service.SockStream, Protocol: "unix", Family: service.FamilyUnix, UnixPath: "/run/x.sock"}
	got := BuildEnv(svc, Conn{Peer: &service.PeerCred{PID: 1, UID: 1000, GID: 100}}, []string{"UNIXREMOTEEUID=0", "PATH=/bin"})
	want := []string{"PATH=/bin", "PROTO=UNIX", "UNIXLOCALPATH=/run/x.sock", "UNIXREMOTEEUID=1000", "UNIXREMOTEEGID=100", "UNIXREMOTEPID=1"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
