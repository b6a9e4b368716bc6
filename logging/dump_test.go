package logging

import (
	"bytes"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// captureEnv is the start-up environment of the machine the 01-rich
// samples were captured on (only passenv'd variables matter).
var captureEnv = []string{
	"PATH=/usr/local/go/bin:/root/go/bin:/root/.cargo/bin:/root/.cargo/bin:/root/.pyenv/plugins/pyenv-virtualenv/shims:/root/.pyenv/shims:/root/.pyenv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"TERM=xterm",
}

// captureLookup resolves like the capture's network namespace: 127.0.0.1
// is localhost in /etc/hosts, ::1 has no name.
func captureLookup(a netip.Addr) (string, bool) {
	if a == netip.MustParseAddr("127.0.0.1") {
		return "localhost", true
	}
	return "", false
}

var captureDump = DumpOptions{LookupAddr: captureLookup, Environ: captureEnv}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func num(addr string, bits int) service.AddrEntry {
	return service.AddrEntry{Kind: service.AddrNumeric, Prefix: netip.PrefixFrom(netip.MustParseAddr(addr), bits), Text: addr}
}

func u32(v uint32) *uint32 { return &v }

var (
	inEntry      = service.Source{File: "/tmp/xt/rich.conf", Line: 1}
	fromDefaults = service.Source{File: "/tmp/xt/rich.conf", Line: 1, Origin: "defaults"}
	// filledIn is the origin of what the parser fills in itself, such as
	// the group a user implies.
	filledIn = service.Source{Origin: "default"}
)

// richConfig is 01-rich.conf as the parser resolves it (built by hand:
// this package may not import the parser).
func richConfig() *service.Config {
	lo := netip.MustParseAddr("127.0.0.1")
	only := []service.AddrEntry{
		num("127.0.0.1", 32),
		{Kind: service.AddrNet, Prefix: pfx("10.0.0.0/8"), Text: "10.0.0.0/8"},
		{Kind: service.AddrNet, Prefix: pfx("192.168.1.0/24"), Text: "192.168.{1,2}"},
		{Kind: service.AddrNet, Prefix: pfx("192.168.2.0/24"), Text: "192.168.{1,2}"},
		num("::1", 128),
		{Kind: service.AddrDomain, Name: ".example.com", Text: ".example.com"},
		{Kind: service.AddrHost, Name: "localhost", Text: "localhost"},
		num("172.16.0.0", 16),
		{Kind: service.AddrNet, Prefix: pfx("::/0"), Text: "::/0"},
	}
	noAccess := []service.AddrEntry{num("10.1.2.3", 32)}
	logFile := service.LogType{Kind: service.LogFile, Path: "/tmp/xt/svc.log", Soft: 10240, Hard: 20480}
	succ := sPID | sHost | sDuration | sExit
	fail := fHost | fAttempt | fUserID
	d := service.Defaults{
		Origins: service.OriginsOf(map[string]service.Source{"instances": inEntry, "groups": inEntry, "umask": inEntry, "cps": inEntry,
			"per_source": inEntry, "bind": inEntry, "passenv": inEntry, "log_type": inEntry}),
		LogType: logFile, LogOnSuccess: succ, LogOnFailure: fail,
		OnlyFrom: service.AddrList{Set: true, Entries: only},
		NoAccess: service.AddrList{Set: true, Entries: noAccess},
		PassEnv:  []string{"PATH", "HOME"}, Disabled: []string{"foo-id"},
		Instances: 20, PerSource: 5, CPS: service.CPS{Rate: 25, Wait: 30}, MaxLoad: 5.5, Groups: true,
		Umask: u32(0o27), Bind: service.Bind{Text: "127.0.0.1", Addr: lo},
	}
	common := logFile
	common.Common = true
	mk := func(name string, f func(s *service.Service)) *service.Service {
		s := &service.Service{
			Name: name, ID: name, Language: service.LangXinetd, Status: service.StatusAccepted,
			Origins:    service.OriginsOf(map[string]service.Source{"instances": fromDefaults, "cps": fromDefaults, "passenv": fromDefaults}),
			SocketType: service.SockStream, Protocol: "tcp", ProtoNum: 6, Family: service.FamilyIPv4,
			Flags: service.FlagIPv4, Groups: true, Umask: u32(0o27), Instances: 20, PerSource: 5,
			CPS: service.CPS{Rate: 25, Wait: 30}, Bind: d.Bind,
			OnlyFrom: d.OnlyFrom, NoAccess: d.NoAccess, LogType: common,
			LogOnSuccess: succ, LogOnFailure: fail, PassEnv: []string{"PATH", "HOME"},
		}
		f(s)
		return s
	}
	root := &service.Cred{Name: "root", ID: 0}
	nobody := &service.Cred{Name: "nobody", ID: 65534}
	// user without group: the parser fills in the user's group, which
	// xinetd never prints.
	asUser := func(s *service.Service, u *service.Cred) {
		s.User, s.Group = u, &service.Cred{Name: map[int]string{0: "root", 65534: "nogroup"}[u.ID], ID: u.ID}
		s.Origins.Set("group", filledIn)
	}
	internal := func(s *service.Service, builtin string, port int) {
		s.Type, s.Builtin, s.Port = service.TypeInternal, builtin, port
	}
	dgram := func(s *service.Service) {
		s.SocketType, s.Protocol, s.ProtoNum, s.Wait = service.SockDgram, "udp", 17, true
	}
	external := func(s *service.Service, port int, server string, argv ...string) {
		s.Type, s.Port, s.Server, s.Argv = service.TypeUnlisted, port, server, argv
		asUser(s, root)
	}
	svcs := []*service.Service{
		mk("echo", func(s *service.Service) { s.ID = "echo-stream"; internal(s, "echo", 7); asUser(s, root) }),
		mk("echo", func(s *service.Service) { s.ID = "echo-dgram"; internal(s, "echo", 7); dgram(s) }),
		mk("chargen", func(s *service.Service) {
			internal(s, "chargen", 19)
			var l []service.AddrEntry
			for _, e := range only {
				if e.Text != "localhost" {
					l = append(l, e)
				}
			}
			s.OnlyFrom = service.AddrList{Set: true, Entries: append(l, num("1.2.3.4", 32))}
		}),
		mk("daytime", func(s *service.Service) {
			internal(s, "daytime", 13)
			s.LogOnSuccess &^= sPID
			s.NoAccess = service.AddrList{Set: true}
		}),
		mk("time", func(s *service.Service) {
			internal(s, "time", 10037)
			s.Type |= service.TypeUnlisted
			dgram(s)
			s.LogType = service.LogType{Kind: service.LogSyslog, Facility: "local3", Level: "warning"}
		}),
		mk("discard", func(s *service.Service) {
			internal(s, "discard", 9)
			s.Wait, s.CPS, s.Instances, s.PerSource = true, service.CPS{}, service.Unlimited, service.Unlimited
			s.Origins.Set("cps", inEntry)
			s.Origins.Set("instances", inEntry)
		}),
		mk("envsvc", func(s *service.Service) {
			external(s, 10100, "/tmp/xt/srv_env.sh", "srv_env.sh", "-a", "one", "two")
			s.User, s.Group = nobody, &service.Cred{Name: "nogroup", ID: 65534}
			s.Origins.Set("group", inEntry)
			s.Env = []string{"FOO=bar", "BAZ=qux=1"}
			nice := 5
			s.Nice, s.Umask = &nice, u32(0o77)
			s.AccessTimes = []service.TimeRange{{Start: 0, End: 23*60 + 59}, {Start: 150, End: 255}}
			s.Flags |= service.FlagNoDelay | service.FlagKeepAlive | service.FlagNoRetry
			s.BannerSuccess, s.BannerFail, s.Libwrap = "/tmp/xt/banner_ok.txt", "/tmp/xt/banner_fail.txt", "mywrapname"
		}),
		mk("nameargs", func(s *service.Service) {
			external(s, 10101, "/tmp/xt/srv_env.sh", "fakeargv0", "x", "y")
			s.Flags |= service.FlagNameInArgs
			s.PassEnv, s.Env = []string{}, []string{"ONLY=this"}
			s.Origins.Set("passenv", inEntry)
		}),
		mk("redir", func(s *service.Service) {
			s.Type, s.Port = service.TypeUnlisted, 10102
			asUser(s, nobody)
			s.Redirect = &service.Redirect{Host: "127.0.0.1", Port: 10100}
			s.LogOnSuccess |= sTraffic
		}),
		mk("trap", func(s *service.Service) {
			internal(s, "", 10103)
			s.Type |= service.TypeUnlisted
			s.Flags |= service.FlagSensor
			s.DenyTime = 5
		}),
		mk("tcpmux", func(s *service.Service) { internal(s, "tcpmux", 1); asUser(s, root) }),
		mk("muxplus", func(s *service.Service) {
			external(s, 0, "/tmp/xt/srv_env.sh", "srv_env.sh")
			s.Type |= service.TypeTCPMuxPlus
		}),
		mk("v6svc", func(s *service.Service) {
			external(s, 10104, "/bin/cat", "cat")
			s.Bind = service.Bind{Text: "::1", Addr: netip.MustParseAddr("::1")}
			s.Family, s.Flags = service.FamilyIPv6, service.FlagIPv6
			yes := true
			s.V6Only = &yes
			s.OnlyFrom = service.AddrList{Set: true, Entries: []service.AddrEntry{num("::1", 128), num("::ffff:127.0.0.1", 128)}}
		}),
		mk("v4svc", func(s *service.Service) { external(s, 10105, "/bin/cat", "cat") }),
		mk("waitsvc", func(s *service.Service) { external(s, 10106, "/bin/cat", "cat"); s.Wait = true }),
		mk("foo", func(s *service.Service) { s.ID = "foo-id"; s.Status = service.StatusDisabled }),
		mk("offsvc", func(s *service.Service) { s.Status = service.StatusDisabled }),
	}
	return &service.Config{Main: "/tmp/xt/rich.conf", Files: []string{"/tmp/xt/rich.conf"}, Defaults: d, Services: svcs}
}

func compareGolden(t *testing.T, got []byte, path string) {
	t.Helper()
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("%s: first difference at line %d:\n got %q\nwant %q", path, i+1, g, w)
		}
	}
}

func TestGoldenConfigDumpRich(t *testing.T) {
	var b bytes.Buffer
	WriteConfigDumpWith(&b, richConfig(), captureDump)
	compareGolden(t, b.Bytes(), "testdata/config-dump-01-rich.golden")
}

func richState() *DumpState {
	cfg := richConfig()
	st := &DumpState{
		Version: "2.3.15.3", Now: time.Date(2026, 11, 23, 0, 32, 25, 0, time.Local),
		ConfigFile: "/tmp/xt/rich.conf", Config: cfg, Dump: captureDump,
		Servers: []DumpServer{{ID: "discard", PID: 3172, Start: time.Date(2026, 11, 23, 0, 32, 25, 0, time.Local),
			FD: 12, Flags: 1}},
		SocketFDs:      []int{6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 0, 4},
		OpenFDs:        []int{1, 2, 3, 5, 7, 20},
		ActiveServices: 12, AvailableServices: 13, DescriptorsFree: 19978, RunningServers: 1,
		MaxDescriptors: 20000, DebugFD: 3,
	}
	fds := map[string]int{"echo-stream": 6, "echo-dgram": 8, "chargen": 9, "daytime": 10, "time": 11, "envsvc": 13,
		"nameargs": 14, "redir": 15, "trap": 16, "tcpmux": 17, "v6svc": 18, "v4svc": 19}
	states := map[string]string{"discard": StateSuspended, "muxplus": StateNotStarted, "waitsvc": StateDisabled}
	for _, s := range cfg.Accepted() {
		state := states[s.ID]
		if state == "" {
			state = StateActive
		}
		st.Services = append(st.Services, DumpService{ID: s.ID, State: state, FD: fds[s.ID]})
	}
	return st
}

func TestGoldenStateDumpRich(t *testing.T) {
	var b bytes.Buffer
	WriteStateDump(&b, richState())
	compareGolden(t, b.Bytes(), "testdata/xinetd/03-dump-rich-config.txt")
}

// smallConfig is 04-small.conf.
func smallConfig() *service.Config {
	lo := service.Bind{Text: "127.0.0.1", Addr: netip.MustParseAddr("127.0.0.1")}
	lt := service.LogType{Kind: service.LogSyslog, Facility: "local3", Level: "info"}
	succ, fail := sPID|sHost|sDuration|sExit, fHost
	mk := func(name, id string, st service.SocketType) *service.Service {
		s := &service.Service{Name: name, ID: id, Status: service.StatusAccepted, Type: service.TypeInternal,
			SocketType: st, Protocol: "tcp", ProtoNum: 6, Port: map[string]int{"echo": 7, "daytime": 13}[name],
			Family: service.FamilyIPv4, Instances: service.Unlimited, PerSource: service.Unlimited, Bind: lo,
			LogType: lt, LogOnSuccess: succ, LogOnFailure: fail}
		if st == service.SockDgram {
			s.Protocol, s.ProtoNum, s.Wait = "udp", 17, true
		}
		return s
	}
	echoU := mk("echo", "echo-u", service.SockDgram)
	echoU.LogType = service.LogType{Kind: service.LogSyslog, Facility: "auth", Level: "err"}
	echoU.OnlyFrom = service.AddrList{Set: true, Entries: []service.AddrEntry{num("10.0.0.1", 32)}}
	day := mk("daytime", "daytime", service.SockStream)
	day.NoAccess = service.AddrList{Set: true, Entries: []service.AddrEntry{num("127.0.0.1", 32)}}
	return &service.Config{
		Defaults: service.Defaults{LogType: lt, LogOnSuccess: succ, LogOnFailure: fail, Bind: lo,
			Instances: service.Unlimited, PerSource: service.Unlimited},
		Services: []*service.Service{mk("echo", "echo", service.SockStream), echoU, day},
	}
}

func TestGoldenStateDumpSmall(t *testing.T) {
	st := &DumpState{
		Version: "2.3.15.3", Now: time.Date(2026, 11, 23, 0, 34, 44, 0, time.Local), Config: smallConfig(),
		ConfigFile: "/tmp/xt/t4.conf", Dump: captureDump,
		Services: []DumpService{{ID: "echo", State: StateActive, FD: 5}, {ID: "echo-u", State: StateActive, FD: 6},
			{ID: "daytime", State: StateActive, FD: 7}},
		SocketFDs: []int{5, 6, 7, 3}, OpenFDs: []int{0, 1, 2, 4, 8, 9},
		ActiveServices: 3, AvailableServices: 3, DescriptorsFree: 19989, MaxDescriptors: 20000,
	}
	var b bytes.Buffer
	WriteStateDump(&b, st)
	compareGolden(t, b.Bytes(), "testdata/xinetd/04-dump-small-config.txt")
}

func TestParseCapturedStateDumps(t *testing.T) {
	tests := []struct {
		file                 string
		services, servers    int
		firstState, lastFile string
		socketFDs, debugFD   int
	}{
		{"03-dump-rich-config.txt", 15, 1, StateActive, "/tmp/xt/rich.conf", 15, 3},
		{"04-dump-small-config.txt", 3, 0, StateActive, "/tmp/xt/t4.conf", 4, 0},
		{"21-wait-suspended-forever.dump.txt", 2, 0, StateSuspended, "/tmp/xt/t18.conf", 3, 3},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open("testdata/xinetd/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			d, err := ParseStateDump(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Services) != tc.services || len(d.Servers) != tc.servers || d.Services[0].State != tc.firstState ||
				d.ConfigFile != tc.lastFile || len(d.SocketFDs) != tc.socketFDs || d.DebugFD != tc.debugFD ||
				d.PfdsLast != len(d.SocketFDs) || d.Version != "2.3.15.3" || d.Time.IsZero() {
				t.Errorf("parsed %+v", d)
			}
			for _, s := range d.Services {
				if s.ID == "" || len(s.Config) == 0 || s.HasCounts != (s.State == StateActive) {
					t.Errorf("service %+v", s)
				}
			}
		})
	}
	f, _ := os.Open("testdata/xinetd/03-dump-rich-config.txt")
	defer f.Close()
	d, _ := ParseStateDump(f)
	if sv := d.Servers[0]; sv.ID != "discard" || sv.PID != 3172 || sv.FD != 12 || sv.Flags != 1 || sv.Remote.IsValid() {
		t.Errorf("server %+v", sv)
	}
	if d.Services[0].ID != "echo-stream" || d.Services[0].FD != 6 || d.Services[6].Name != "envsvc" {
		t.Errorf("services %+v", d.Services[:2])
	}
}

// TestStateDumpRoundTrip writes a dump with every gxinetd section and
// reads it back; two dumps appended to one file come back in order.
func TestStateDumpRoundTrip(t *testing.T) {
	st := richState()
	st.Now = time.Now().Truncate(time.Second)
	st.Servers = append(st.Servers, DumpServer{ID: "envsvc", PID: 99, Start: st.Now, FD: 21,
		Remote: ap("[::ffff:127.0.0.1]:40000"), ForkFailures: 2, LogRemoteUser: true, WritesToLog: true, Flags: 3})
	st.Retries = []DumpServer{{ID: "waitsvc", PID: 0, Start: st.Now, FD: 22, Remote: ap("[::1]:5"), Flags: 1}}
	st.Counters = []ServiceCounters{
		{ID: "echo-stream", Served: 10, Refused: map[string]uint64{"address": 3, "cps": 1}, BytesIn: 5, BytesOut: 7, Running: 1},
		{ID: "redir", Served: 1, ExecFailures: 2},
	}
	st.DenyList = []DenyEntry{{Addr: "127.0.0.3", Expires: st.Now.Add(5 * time.Minute)}, {Addr: "::1"}}
	st.LogDrops = map[string]uint64{"syslog": 4, "file:/var/log/a b.log": 0}
	var b bytes.Buffer
	WriteStateDump(&b, st)
	first := b.String()
	st.RunningServers = 7
	WriteStateDump(&b, st)
	all, err := ParseStateDumps(&b)
	if err != nil {
		t.Fatalf("%v\n%s", err, first)
	}
	if len(all) != 2 || all[0].RunningServers != 1 || all[1].RunningServers != 7 {
		t.Fatalf("got %d dumps", len(all))
	}
	d := all[0]
	if !d.Time.Equal(st.Now) {
		t.Errorf("time %v, want %v", d.Time, st.Now)
	}
	utc := func(v []DumpServer) []DumpServer {
		out := append([]DumpServer(nil), v...)
		for i := range out {
			out[i].Start = out[i].Start.UTC()
		}
		return out
	}
	for i := range st.DenyList {
		st.DenyList[i].Expires = st.DenyList[i].Expires.UTC()
	}
	for i := range d.DenyList {
		if !d.DenyList[i].Expires.IsZero() {
			d.DenyList[i].Expires = d.DenyList[i].Expires.UTC()
		}
	}
	if !reflect.DeepEqual(utc(d.Servers), utc(st.Servers)) || !reflect.DeepEqual(utc(d.Retries), utc(st.Retries)) {
		t.Errorf("servers\n got %+v\nwant %+v", d.Servers, st.Servers)
	}
	if !reflect.DeepEqual(d.Counters, st.Counters) {
		t.Errorf("counters\n got %+v\nwant %+v", d.Counters, st.Counters)
	}
	if !reflect.DeepEqual(d.DenyList, st.DenyList) || !reflect.DeepEqual(d.LogDrops, st.LogDrops) {
		t.Errorf("deny %+v drops %+v", d.DenyList, d.LogDrops)
	}
	if !reflect.DeepEqual(d.SocketFDs, st.SocketFDs) || !reflect.DeepEqual(d.OpenFDs, st.OpenFDs) ||
		d.ActiveServices != st.ActiveServices || d.AvailableServices != st.AvailableServices ||
		d.DescriptorsFree != st.DescriptorsFree || d.MaxDescriptors != st.MaxDescriptors ||
		d.ConfigFile != st.ConfigFile || d.DebugFD != st.DebugFD || d.LoggingService != "enabled" {
		t.Errorf("tail fields %+v", d)
	}
	if len(d.Services) != len(st.Services) {
		t.Fatalf("%d services, want %d", len(d.Services), len(st.Services))
	}
	for i, s := range d.Services {
		w := st.Services[i]
		if s.ID != w.ID || s.State != w.State || s.FD != w.FD || s.HasCounts != (w.State == StateActive) {
			t.Errorf("service %d: %+v, want %+v", i, s, w)
		}
	}
	if len(d.Defaults) == 0 || d.Defaults[0] != "Instances = 20" {
		t.Errorf("defaults %q", d.Defaults)
	}
}

func TestParseStateDumpErrors(t *testing.T) {
	tests := map[string]string{
		"empty":       "",
		"truncated":   "INTERNAL STATE DUMP: 1\nCurrent time: x\n\nServices + defaults:\n",
		"outside":     "hello\n",
		"bad number":  "INTERNAL STATE DUMP: 1\nServer table dump:\n\nRetry table dump:\n\nSocket mask: 1 x\nEND OF DUMP\n",
		"nested dump": "INTERNAL STATE DUMP: 1\nINTERNAL STATE DUMP: 2\n",
		"bad remote":  "INTERNAL STATE DUMP: 1\nServer table dump:\nx server\n\tremote_address = nowhere\nEND OF DUMP\n",
	}
	for name, in := range tests {
		if _, err := ParseStateDump(strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzParseStateDump(f *testing.F) {
	for _, name := range []string{"03-dump-rich-config.txt", "04-dump-small-config.txt", "21-wait-suspended-forever.dump.txt"} {
		b, err := os.ReadFile("testdata/xinetd/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	st := richState()
	st.Counters = []ServiceCounters{{ID: "a", Served: 1, Refused: map[string]uint64{"cps": 2}}}
	st.DenyList = []DenyEntry{{Addr: "::1"}}
	st.LogDrops = map[string]uint64{"syslog": 1}
	var b bytes.Buffer
	WriteStateDump(&b, st)
	f.Add(b.String())
	f.Fuzz(func(t *testing.T, in string) {
		all, err := ParseStateDumps(strings.NewReader(in))
		if err != nil {
			return
		}
		if len(all) == 0 {
			t.Fatal("success without a dump")
		}
		for _, d := range all {
			if d == nil {
				t.Fatal("nil dump")
			}
			if n := strings.Count(in, "INTERNAL STATE DUMP: "); n < len(all) {
				t.Fatalf("%d dumps from %d headers", len(all), n)
			}
		}
	})
}

func TestMetrics(t *testing.T) {
	st := &DumpState{
		Services: []DumpService{{ID: "a", State: StateActive}, {ID: "b", State: StateDisabled}},
		Counters: []ServiceCounters{
			{ID: "b", Served: 2},
			{ID: `we"ird\`, Served: 10, Refused: map[string]uint64{"cps": 1, "address": 3}, ExecFailures: 1,
				BytesIn: 5, BytesOut: 6, Running: 2},
		},
		DenyList:       []DenyEntry{{Addr: "127.0.0.3"}},
		LogDrops:       map[string]uint64{"syslog": 4},
		RunningServers: 2,
	}
	var b bytes.Buffer
	WriteMetrics(&b, st)
	want := []string{
		`gxinetd_connections_total{service="b"} 2`,
		`gxinetd_connections_total{service="we\"ird\\"} 10`,
		`gxinetd_refused_total{service="we\"ird\\",reason="address"} 3`,
		`gxinetd_refused_total{service="we\"ird\\",reason="cps"} 1`,
		`gxinetd_running{service="we\"ird\\"} 2`,
		`gxinetd_exec_failures_total{service="we\"ird\\"} 1`,
		`gxinetd_bytes_total{service="we\"ird\\",direction="in"} 5`,
		`gxinetd_bytes_total{service="we\"ird\\",direction="out"} 6`,
		`gxinetd_log_dropped_total{sink="syslog"} 4`,
		`gxinetd_deny_list_entries 1`,
		`gxinetd_services{state="Active"} 1`,
		`gxinetd_services{state="Disabled"} 1`,
		`gxinetd_running_servers 2`,
		"# TYPE gxinetd_connections_total counter",
		"# TYPE gxinetd_running gauge",
	}
	out := b.String()
	for _, w := range want {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("metrics lack %q:\n%s", w, out)
		}
	}
	if strings.Index(out, `service="b"} 2`) > strings.Index(out, `service="we\"ird\\"} 10`) {
		t.Error("series not sorted by service")
	}
	// Every non-comment line is NAME{LABELS} VALUE or NAME VALUE.
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "# ") {
			continue
		}
		if f := strings.Fields(l[strings.LastIndexByte(l, ' '):]); len(f) != 1 {
			t.Errorf("bad sample line %q", l)
		}
	}
}

func TestAddrEntryNotation(t *testing.T) {
	tests := []struct {
		e    service.AddrEntry
		want string
	}{
		{num("10.1.0.0", 16), "10.1.0.0(NUMERIC)"},
		{num("::ffff:127.0.0.1", 128), "::ffff:127.0.0.1(NUMERIC)"},
		{service.AddrEntry{Kind: service.AddrNet, Prefix: pfx("10.0.0.0/8"), Text: "10.0.0.0/8"}, "10.0.0.0/255.0.0.0(NET)"},
		{service.AddrEntry{Kind: service.AddrNet, Prefix: pfx("127.0.0.2/31"), Text: "127.0.0.2/31"}, "127.0.0.2/255.255.255.254(NET)"},
		{service.AddrEntry{Kind: service.AddrNet, Prefix: pfx("127.0.0.5/32"), Text: "127.0.0.5/32"}, "127.0.0.5(NUMERIC)"},
		{service.AddrEntry{Kind: service.AddrNet, Prefix: pfx("fe80::/10"), Text: "fe80::/10"}, "fe80::/ffc0::(NET)"},
		{service.AddrEntry{Kind: service.AddrNet, Prefix: pfx("127.0.0.0/8"), Text: "loopback"}, "127.0.0.0/255.0.0.0(NET)"},
		{service.AddrEntry{Kind: service.AddrHost, Name: "host2", Text: "Host2"}, "Host2(HOST)"},
		{service.AddrEntry{Kind: service.AddrDomain, Name: ".example.com"}, ".example.com(HOST)"},
	}
	for _, tc := range tests {
		if got := addrEntry(tc.e); got != tc.want {
			t.Errorf("addrEntry(%+v) = %q, want %q", tc.e, got, tc.want)
		}
	}
}

// TestConfigDumpVariants covers lines the 01-rich golden does not:
// no logging, soft limit only, an RPC service, a dual-stack socket.
func TestConfigDumpVariants(t *testing.T) {
	s := &service.Service{Name: "rpcsvc", ID: "rpcsvc", Status: service.StatusAccepted, Type: service.TypeRPC,
		SocketType: service.SockDgram, Protocol: "udp", ProtoNum: 17, Wait: true, PerSource: service.Unlimited,
		RPCNumber: 100000, RPCLow: 2, RPCHigh: 4, Server: "/usr/sbin/rpcd", Argv: []string{"rpcd"},
		LogType: service.LogType{Kind: service.LogFile, Path: "/var/log/r.log", Soft: 1024}, LogOnSuccess: sHost,
		Origins: service.OriginsOf(map[string]service.Source{"instances": {Origin: "flag"}}), Instances: 3}
	cfg := &service.Config{Services: []*service.Service{s}}
	var b bytes.Buffer
	WriteConfigDumpWith(&b, cfg, captureDump)
	want := "Service defaults\n\tBind = All addresses.\n\tOnly from: All sites\n\tNo access: No blocked sites\n\tNo logging\n\n" +
		"Service configuration: rpcsvc\n\tid = rpcsvc\n\tflags = IPv6\n\ttype = RPC\n\tsocket_type = dgram\n" +
		"\tProtocol (name,number) = (udp,17)\n\tInstances = 3\n\twait = yes\n\tGroups = no\n\tPER_SOURCE = -1\n" +
		"\tBind = All addresses.\n\tServer = /usr/sbin/rpcd\n\tServer argv = rpcd\n\tRPC data\n\t\tprogram number = 100000\n" +
		"\t\trpc_version = 2-4\n\tOnly from: All sites\n\tNo access: No blocked sites\n" +
		"\tLogging to file: /var/log/r.log (soft=1024 hard=6144)\n\tLog_on_success flags = HOST\n\tLog_on_failure flags =\n\n"
	if b.String() != want {
		t.Errorf("dump:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestConfigDumpSandbox: a sandboxed service's dump lists its sandbox,
// with the namespaces it really gets (mount, for a private /tmp) and
// no_new_privs implied by seccomp; a service without one is dumped as
// xinetd dumps it (TestConfigDumpVariants).
func TestConfigDumpSandbox(t *testing.T) {
	s := &service.Service{Name: "ctf", ID: "ctf", Status: service.StatusAccepted, SocketType: service.SockStream,
		Protocol: "tcp", ProtoNum: 6, PerSource: 4, Server: "/chal", Argv: []string{"chal"}, MaxDuration: 300,
		Sandbox: service.Sandbox{Chroot: "/srv/jail", Namespaces: service.NsPID, PrivateTmp: true,
			WritablePaths: []string{"/data"}, Seccomp: &service.Seccomp{Profile: "default"}}}
	var b bytes.Buffer
	WriteConfigDumpWith(&b, &service.Config{Services: []*service.Service{s}}, captureDump)
	want := "\tSandbox:\n\t\tchroot = /srv/jail\n\t\tnamespaces = pid mount\n\t\tprivate_tmp = 67108864 bytes\n" +
		"\t\twritable_paths = /data\n\t\tno_new_privs = yes\n\t\tseccomp = default\n\t\tmax_duration = 300\n\n"
	if !strings.HasSuffix(b.String(), want) {
		t.Errorf("dump:\n%s\nwant it to end with:\n%s", b.String(), want)
	}
}
