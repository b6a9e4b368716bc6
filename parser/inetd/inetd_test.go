package inetd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// summary renders the fields the table tests look at.
func summary(s *service.Service) map[string]string {
	m := map[string]string{
		"status": string(s.Status), "name": s.Name, "id": s.ID, "port": fmt.Sprint(s.Port),
		"family": s.Family.String(), "sock": s.SocketType.String(), "proto": s.Protocol,
		"wait": fmt.Sprint(s.Wait), "type": s.Type.String(), "builtin": s.Builtin,
		"server": s.Server, "argv": strings.Join(s.Argv, "|"), "bind": s.Bind.Text,
		"instances": s.Instances.String(), "per_source": s.PerSource.String(),
		"per_minute": fmt.Sprint(s.Inetd.PerMinute), "per_ip_per_minute": fmt.Sprint(s.Inetd.PerIPPerMinute),
		"class": s.LoginClass, "sndbuf": fmt.Sprint(s.SndBuf), "rcvbuf": fmt.Sprint(s.RcvBuf),
		"rpc": fmt.Sprintf("%d/%d-%d", s.RPCNumber, s.RPCLow, s.RPCHigh), "unix": s.UnixPath,
		"mode": fmt.Sprintf("%o", s.UnixMode), "v6only": fmt.Sprint(s.V6Only != nil && *s.V6Only),
	}
	if s.User != nil {
		m["user"] = fmt.Sprintf("%s(%d)", s.User.Name, s.User.ID)
	}
	if s.Group != nil {
		m["group"] = fmt.Sprintf("%s(%d)", s.Group.Name, s.Group.ID)
	}
	if s.UnixOwner != nil {
		m["unix_owner"] = s.UnixOwner.Name
	}
	return m
}

func TestFields(t *testing.T) {
	db := testDB(t)
	tests := []struct {
		name    string
		dialect string
		line    string
		want    map[string]string
		code    string // a diagnostic code that must appear
	}{
		{"service name", "", "ftp stream tcp nowait root /usr/sbin/in.ftpd in.ftpd -l",
			map[string]string{"port": "21", "argv": "in.ftpd|-l", "server": "/usr/sbin/in.ftpd", "family": "dual", "type": ""}, "N-DIALECT"},
		{"port number", "", "2121 stream tcp4 nowait root /usr/sbin/in.ftpd in.ftpd",
			map[string]string{"port": "2121", "type": "UNLISTED", "family": "ipv4", "name": "2121"}, ""},
		{"service alias", "", "ident stream tcp nowait nobody /usr/sbin/identd identd", map[string]string{"port": "113"}, ""},
		{"plain tcp freebsd", "freebsd", "ftp stream tcp nowait root /usr/sbin/in.ftpd in.ftpd", map[string]string{"family": "ipv4"}, "N-DIALECT"},
		{"plain tcp openbsd", "openbsd", "ftp stream tcp nowait root /usr/sbin/in.ftpd in.ftpd", map[string]string{"family": "ipv4"}, "N-DIALECT"},
		{"tcp6", "", "ftp stream tcp6 nowait root /usr/sbin/in.ftpd in.ftpd", map[string]string{"family": "ipv6", "v6only": "true"}, ""},
		{"tcp46", "", "ftp stream tcp46 nowait root /usr/sbin/in.ftpd in.ftpd", map[string]string{"family": "dual", "v6only": "false"}, ""},
		{"udp4", "", "tftp dgram udp4 wait nobody /usr/sbin/in.tftpd in.tftpd", map[string]string{"family": "ipv4", "proto": "udp", "port": "69", "wait": "true"}, ""},
		{"udp46", "", "tftp dgram udp46 wait nobody /usr/sbin/in.tftpd in.tftpd", map[string]string{"family": "dual"}, ""},
		{"raw", "", "icmp raw icmp wait root /usr/sbin/x x", map[string]string{"status": "rejected"}, "E-SERVICE"},
		{"seqpacket unix", "", "/run/sp seqpacket unix nowait root /usr/sbin/x x", map[string]string{"sock": "seqpacket", "family": "unix", "unix": "/run/sp", "mode": "200"}, ""},
		{"rdm", "", "x rdm tcp nowait root /usr/sbin/x x", map[string]string{"status": "rejected"}, "E-PROTO"},
		{"rpc range", "", "rstatd/1-3 dgram rpc/udp wait root /usr/sbin/rpc.rstatd rpc.rstatd", map[string]string{"rpc": "100001/1-3", "type": "RPC", "port": "0", "name": "rstatd"}, ""},
		{"rpc single tcp6", "", "rusersd/2 stream rpc/tcp6 nowait root /usr/sbin/r r", map[string]string{"rpc": "100002/2-2", "family": "ipv6", "proto": "tcp"}, ""},
		{"rpc numeric", "", "300019/1 dgram rpc/udp wait root /usr/sbin/r r", map[string]string{"rpc": "300019/1-1", "type": "RPC UNLISTED"}, ""},
		{"unix prefix", "freebsd", ":nobody:wheel:0660:/var/run/x stream unix nowait root /usr/sbin/x x", map[string]string{"unix": "/var/run/x", "mode": "660", "unix_owner": "nobody"}, ""},
		{"unix builtin", "freebsd", "/var/run/chargen stream unix nowait root internal", map[string]string{"builtin": "chargen", "type": "INTERNAL"}, ""},
		{"freebsd limits", "freebsd", "ftp stream tcp nowait/5/10/2 root /usr/sbin/in.ftpd in.ftpd", map[string]string{"instances": "5", "per_ip_per_minute": "10", "per_source": "2", "per_minute": "256"}, ""},
		{"freebsd max-child only", "freebsd", "ftp stream tcp nowait/5 root /usr/sbin/in.ftpd in.ftpd", map[string]string{"instances": "5", "per_source": "UNLIMITED"}, ""},
		{"freebsd zero is unlimited", "freebsd", "ftp stream tcp nowait/0 root /usr/sbin/in.ftpd in.ftpd", map[string]string{"instances": "UNLIMITED"}, ""},
		{"slash in linux", "linux", "ftp stream tcp nowait/5 root /usr/sbin/in.ftpd in.ftpd", map[string]string{"instances": "5"}, "N-DIALECT"},
		{"dot rate", "", "ftp stream tcp nowait.200 root /usr/sbin/in.ftpd in.ftpd", map[string]string{"per_minute": "200", "instances": "UNLIMITED"}, ""},
		{"dot rate bad", "", "ftp stream tcp nowait.abc root /usr/sbin/in.ftpd in.ftpd", map[string]string{"status": "rejected"}, "E-WAIT"},
		{"colon rate", "netbsd", "ftp stream tcp wait:30 root /usr/sbin/in.ftpd in.ftpd", map[string]string{"per_minute": "30", "wait": "true"}, ""},
		{"netbsd default rate", "netbsd", "ftp stream tcp nowait root /usr/sbin/in.ftpd in.ftpd", map[string]string{"per_minute": "40"}, ""},
		{"accept-max", "netbsd", "ftp stream,7 tcp nowait root /usr/sbin/in.ftpd in.ftpd", map[string]string{"instances": "7"}, ""},
		{"user:group", "", "x stream tcp4 nowait nobody:staff /usr/sbin/x x 1", map[string]string{"user": "nobody(65534)", "group": "staff(50)", "port": "0", "status": "rejected"}, "E-SERVICE"},
		{"user.group", "", "finger stream tcp nowait nobody.staff /usr/sbin/x x", map[string]string{"user": "nobody(65534)", "group": "staff(50)"}, ""},
		{"dotted user", "", "finger stream tcp nowait first.last /usr/sbin/x x", map[string]string{"user": "first.last(1001)", "group": "first.last(1001)"}, ""},
		{"default group", "", "finger stream tcp nowait fingerd /usr/sbin/x x", map[string]string{"group": "nogroup(65534)"}, ""},
		{"numeric user", "", "finger stream tcp nowait 4242 /usr/sbin/x x", map[string]string{"user": "4242(4242)", "group": "(4242)"}, ""},
		{"login class", "freebsd", "finger stream tcp nowait nobody:staff/daemon /usr/sbin/x x", map[string]string{"class": "daemon", "group": "staff(50)", "status": "accepted"}, "W-LOGIN-CLASS"},
		{"internal auth options", "freebsd", "auth stream tcp nowait root internal auth -r -f", map[string]string{"builtin": "auth", "argv": "auth|-r|-f", "server": ""}, ""},
		{"internal echo dgram", "", "echo dgram udp wait root internal", map[string]string{"id": "echo-dgram", "builtin": "echo", "wait": "true"}, ""},
		{"internal numeric port", "", "7 stream tcp nowait root internal", map[string]string{"builtin": "echo", "id": "7-stream"}, ""},
		{"internal forced nowait", "", "echo stream tcp wait root internal", map[string]string{"wait": "false"}, "W-WAIT-FORCED"},
		{"tcpmux plus", "", "tcpmux/+date stream tcp nowait nobody /bin/date date", map[string]string{"name": "date", "type": "UNLISTED TCPMUXPLUS", "port": "0"}, ""},
		{"tcpmux", "", "tcpmux/scp stream tcp nowait nobody /bin/scpd scpd", map[string]string{"name": "scp", "type": "UNLISTED TCPMUX"}, ""},
		{"tcpmux internal", "", "tcpmux stream tcp nowait root internal", map[string]string{"builtin": "tcpmux", "port": "1"}, ""},
		{"addr prefix", "openbsd", "127.0.0.1:ftp stream tcp nowait root /usr/sbin/x x", map[string]string{"bind": "127.0.0.1", "family": "ipv4"}, ""},
		{"v6 prefix", "openbsd", "[::1]:ftp stream tcp nowait root /usr/sbin/x x", map[string]string{"bind": "::1", "family": "ipv6"}, ""},
		{"busybox v6 wildcard", "openbsd", ":::ftp stream tcp6 nowait root /usr/sbin/x x", map[string]string{"bind": "::", "family": "ipv6"}, ""},
		{"star prefix", "linux", "*:ftp stream tcp nowait root /usr/sbin/x x", map[string]string{"bind": "", "family": "dual"}, ""},
		{"host prefix", "openbsd", "localhost:ftp stream tcp nowait root /usr/sbin/x x", map[string]string{"bind": "localhost"}, ""},
		{"prefix in freebsd", "freebsd", "127.0.0.1:ftp stream tcp nowait root /usr/sbin/x x", map[string]string{"bind": "127.0.0.1"}, "N-DIALECT"},
		{"bufs", "", "ftp stream tcp,sndbuf=64k,rcvbuf=2m nowait root /usr/sbin/x x", map[string]string{"sndbuf": "65536", "rcvbuf": "2097152"}, ""},
		{"no argv0", "", "ftp stream tcp nowait root /usr/sbin/in.ftpd", map[string]string{"argv": "in.ftpd"}, "W-ARGV0"},
		{"relative server", "", "ftp stream tcp nowait root in.ftpd in.ftpd", map[string]string{"status": "rejected"}, "E-SERVER"},
		{"freebsd quoting", "freebsd", `ftp stream tcp nowait root /usr/sbin/x x "a b" 'c'`, map[string]string{"argv": "x|a b|c"}, ""},
		{"linux literal quotes", "linux", `ftp stream tcp nowait root /usr/sbin/x x "a b"`, map[string]string{"argv": `x|"a|b"`}, "N-DIALECT"},
		{"unterminated quote", "freebsd", `ftp stream tcp nowait root /usr/sbin/x x "a b`, map[string]string{"status": "rejected"}, "E-QUOTE"},
		{"missing fields", "", "ftp stream tcp", map[string]string{"status": "rejected", "name": "ftp"}, "E-FIELDS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svcs, diags := Parse("t.conf", []byte(tc.line+"\n"), Options{Sys: db, Dialect: tc.dialect})
			if len(svcs) != 1 {
				t.Fatalf("got %d services, want 1; diags:\n%v", len(svcs), diags)
			}
			got := summary(svcs[0])
			if tc.want["status"] == "" && got["status"] != "accepted" {
				t.Errorf("rejected: %v", svcs[0].Reasons)
			}
			for k, w := range tc.want {
				if got[k] != w {
					t.Errorf("%s = %q, want %q (diags: %v)", k, got[k], w, diags)
				}
			}
			if tc.code != "" && !hasCode(diags, tc.code) {
				t.Errorf("no %s diagnostic in:\n%v", tc.code, diags)
			}
		})
	}
}

func hasCode(ds service.Diags, code string) bool {
	for _, d := range ds {
		if d.Code == code {
			return true
		}
	}
	return false
}

func TestMultiAddressAndDefaults(t *testing.T) {
	db := testDB(t)
	conf := "192.0.2.1,[2001:db8::1]:ftp stream tcp nowait root /usr/sbin/x x\n" +
		"127.0.0.1:\n" +
		"echo stream tcp nowait root internal\n" +
		"*:\n" +
		"daytime stream tcp nowait root internal\n"
	svcs, diags := Parse("t.conf", []byte(conf), Options{Sys: db, Dialect: "linux"})
	if diags.HasErrors() || len(svcs) != 4 {
		t.Fatalf("%d services, diags:\n%v", len(svcs), diags)
	}
	want := []struct{ id, bind, fam string }{
		{"ftp-tcp-192.0.2.1", "192.0.2.1", "ipv4"}, {"ftp-tcp-2001_db8__1", "2001:db8::1", "ipv6"},
		{"echo-stream", "127.0.0.1", "ipv4"}, {"daytime-stream", "", "dual"},
	}
	for i, w := range want {
		s := svcs[i]
		if s.ID != w.id || s.Bind.Text != w.bind || s.Family.String() != w.fam {
			t.Errorf("service %d = %s bind %q %s, want %+v", i, s.ID, s.Bind.Text, s.Family, w)
		}
	}
}

func TestCommandLineLimits(t *testing.T) {
	db := testDB(t)
	conf := "ftp stream tcp nowait root /usr/sbin/x x\nfinger stream tcp nowait/3/0/1 root /usr/sbin/x x\n"
	svcs, _ := Parse("t.conf", []byte(conf), Options{Sys: db, Dialect: "freebsd", MaxChild: 9, PerIPPerMinute: 8,
		PerMinute: 7, MaxChildPerIP: 6, BindAddr: "127.0.0.1"})
	if len(svcs) != 2 {
		t.Fatalf("got %d services", len(svcs))
	}
	a, b := svcs[0], svcs[1]
	if a.Instances != 9 || a.Inetd.PerIPPerMinute != 8 || a.Inetd.PerMinute != 7 || a.PerSource != 6 || a.Bind.Text != "127.0.0.1" {
		t.Errorf("flags not applied: %+v %+v %v", a.Instances, a.Inetd, a.Bind)
	}
	for _, k := range []string{"instances", "per_source", "cpm", "per_source_cpm", "bind"} {
		if a.Origins.At(k).Origin != "flag" {
			t.Errorf("origin of %s = %+v, want flag", k, a.Origins.At(k))
		}
	}
	if b.Instances != 3 || b.Inetd.PerIPPerMinute != 0 || b.PerSource != 1 || b.Inetd.PerMinute != 7 {
		t.Errorf("entry limits must win over flags: %v %v %v", b.Instances, b.Inetd, b.PerSource)
	}
}

func TestDialectErrors(t *testing.T) {
	_, diags := Parse("t.conf", nil, Options{Dialect: "solaris"})
	if !diags.HasFatal() || diags[0].Code != CodeDialect {
		t.Errorf("unknown dialect: %v", diags)
	}
	_, diags = Parse("t.conf", nil, Options{BindAddr: "not an address!"})
	if !diags.HasFatal() || diags[0].Code != CodeOption {
		t.Errorf("bad -a: %v", diags)
	}
}

func TestSniff(t *testing.T) {
	tests := []struct {
		text string
		want bool
	}{
		{"# c\nftp stream tcp nowait root /usr/sbin/in.ftpd in.ftpd\n", true},
		{"127.0.0.1:\necho stream tcp nowait root internal\n", true},
		{"finger stream,10 tcp nowait:5 nobody /x x\n", true},
		{"service echo\n{\n\ttype = INTERNAL\n}\n", false},
		{"defaults\n{\n}\n", false},
		{"includedir /etc/xinetd.d\n", false},
		{"", false},
		{"# only comments\n\n", false},
		{"instances = 5\n", false},
	}
	for _, tc := range tests {
		if got := Sniff([]byte(tc.text)); got != tc.want {
			t.Errorf("Sniff(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

func TestLoad(t *testing.T) {
	db := testDB(t)
	_, diags := Load(filepath.Join(t.TempDir(), "missing"), Options{Sys: db})
	if !diags.HasFatal() || diags[0].Code != CodeFile {
		t.Errorf("missing file: %v", diags)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "inetd.conf")
	if err := os.WriteFile(f, []byte("echo stream tcp nowait root internal\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	svcs, diags := Load(f, Options{Sys: db})
	if len(svcs) != 1 || diags.HasErrors() || svcs[0].Src.File != f {
		t.Errorf("load: %v %v", svcs, diags)
	}
}

func TestCheckOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership checks need root: files created by another user are never root-owned")
	}
	db := testDB(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "inetd.conf")
	if err := os.WriteFile(f, []byte("ftp stream tcp nowait root /bin/true true\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, diags := Load(f, Options{Sys: db, CheckOwnership: true}); !hasCode(diags, CodeFilePerm) {
		t.Errorf("world-writable file accepted: %v", diags)
	}
	if err := os.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	svcs, diags := Load(f, Options{Sys: db, CheckOwnership: true})
	if len(svcs) != 1 || svcs[0].Status != service.StatusAccepted {
		t.Errorf("/bin/true refused: %v", diags)
	}
	// A server in a world-writable directory can be swapped by anyone.
	bad := filepath.Join(dir, "bin")
	if err := os.Mkdir(bad, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bad, 0o777); err != nil {
		t.Fatal(err)
	}
	srv := filepath.Join(bad, "srv")
	if err := os.WriteFile(srv, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	svcs, diags = Parse("t.conf", []byte("ftp stream tcp nowait root "+srv+" srv\nftp stream tcp6 nowait root "+dir+"/none none\n"),
		Options{Sys: db, CheckOwnership: true})
	if len(svcs) != 2 || svcs[0].Status != service.StatusRejected || !hasCode(diags, CodeServerPerm) || !hasCode(diags, CodeServer) {
		t.Errorf("replaceable or missing server accepted: %v", diags)
	}
}

func TestDuplicates(t *testing.T) {
	db := testDB(t)
	tests := []struct {
		name, conf string
		dups       int
	}{
		{"distinct addresses", "127.0.0.1:echo stream tcp nowait root internal\n127.0.0.2:echo stream tcp nowait root internal\n", 0},
		{"wildcard after address", "127.0.0.1:echo stream tcp nowait root internal\n*:echo stream tcp nowait root internal\n", 1},
		{"v4 and v6 only", "echo stream tcp4 nowait root internal\necho stream tcp6 nowait root internal\n", 0},
		{"dual and v6", "echo stream tcp46 nowait root internal\necho stream tcp6 nowait root internal\n", 1},
		{"tcp and udp", "echo stream tcp nowait root internal\necho dgram udp wait root internal\n", 0},
		{"same address twice", "[::1]:echo stream tcp nowait root internal\n[::1]:echo stream tcp6 nowait root internal\n", 1},
		{"rpc never", "rstatd/1 dgram rpc/udp wait root /x x\nrstatd/2 dgram rpc/udp wait root /x x\n", 0},
		{"unix path", "/run/a stream unix nowait root /x x\n/run/a dgram unix wait root /x x\n", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := Parse("t.conf", []byte(tc.conf), Options{Sys: db, Dialect: "openbsd"})
			n := 0
			for _, d := range diags {
				if d.Code == CodeDuplicate {
					n++
				}
			}
			if n != tc.dups {
				t.Errorf("%d W-DUPLICATE, want %d:\n%v", n, tc.dups, diags)
			}
		})
	}
}

// TestManyAddresses feeds one line with thousands of addresses: every
// address becomes a service and the checks stay linear.
func TestManyAddresses(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&b, "10.%d.%d.1,", i/250, i%250)
	}
	b.WriteString("[::1]:echo stream tcp nowait root internal\n")
	svcs, diags := Parse("t.conf", []byte(b.String()), Options{Sys: testDB(t), Dialect: "openbsd"})
	if len(svcs) != 5001 || diags.HasErrors() || hasCode(diags, CodeDuplicate) {
		t.Fatalf("%d services, %d diags", len(svcs), len(diags))
	}
	ids := map[string]bool{}
	for _, s := range svcs {
		ids[s.ID] = true
	}
	if len(ids) != 5001 {
		t.Errorf("ids not unique: %d", len(ids))
	}
}

func BenchmarkParse(b *testing.B) {
	var conf strings.Builder
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&conf, "%d\tstream\ttcp\tnowait.100\tnobody:staff\t/usr/sbin/srv%d\tsrv -a %d\n", 10000+i, i, i)
	}
	data := []byte(conf.String())
	db := testDB(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Parse("b.conf", data, Options{Sys: db})
	}
}
