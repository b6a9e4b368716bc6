package builtins

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
)

// formatProcAddr encodes an address the way the kernel prints it in
// /proc/net/tcp: 32-bit words in host byte order, then the port in hex.
func formatProcAddr(ap netip.AddrPort) string {
	var sb strings.Builder
	raw := ap.Addr().AsSlice()
	for w := 0; w < len(raw)/4; w++ {
		fmt.Fprintf(&sb, "%08X", binary.NativeEndian.Uint32(raw[w*4:]))
	}
	fmt.Fprintf(&sb, ":%04X", ap.Port())
	return sb.String()
}

type procRow struct {
	local, remote string
	state         int
	uid           int
}

const procHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

func writeProcNet(t testing.TB, dir, name string, rows []procRow) {
	t.Helper()
	var b strings.Builder
	b.WriteString(procHeader)
	for i, r := range rows {
		fmt.Fprintf(&b, "%4d: %s %s %02X 00000000:00000000 00:00000000 00000000 %5d        0 %d 1 0000000000000000 20 4 30 10 -1\n",
			i, formatProcAddr(netip.MustParseAddrPort(r.local)), formatProcAddr(netip.MustParseAddrPort(r.remote)), r.state, r.uid, 1000+i)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseProcNetLine(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the literal rows below are little-endian")
	}
	tests := []struct {
		line string
		want ProcNetEntry
		ok   bool
	}{
		{procHeader, ProcNetEntry{}, false},
		{"   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0",
			ProcNetEntry{netip.MustParseAddrPort("127.0.0.1:22"), netip.MustParseAddrPort("0.0.0.0:0"), 0x0A, 0}, true},
		{"   3: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 99 1 0",
			ProcNetEntry{netip.MustParseAddrPort("127.0.0.1:8080"), netip.MustParseAddrPort("127.0.0.1:54321"), 1, 1000}, true},
		{"   1: 00000000000000000000000001000000:0035 00000000000000000000000001000000:C350 01 00000000:00000000 00:00000000 00000000   105        0 1 1 0",
			ProcNetEntry{netip.MustParseAddrPort("[::1]:53"), netip.MustParseAddrPort("[::1]:50000"), 1, 105}, true},
		{"   2: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000100007F:C350 01 0:0 0:0 0 7 0 1",
			ProcNetEntry{netip.MustParseAddrPort("[::ffff:127.0.0.1]:80"), netip.MustParseAddrPort("[::ffff:127.0.0.1]:50000"), 1, 7}, true},
		{"   0: 0100007F:16 00000000:0000 0A 0 0 0 0", ProcNetEntry{}, false},
		{"   0: 0100007G:0016 00000000:0000 0A 0 0 0 0", ProcNetEntry{}, false},
		{"   0: 0100007F:0016 00000000:0000 0A 0 0 0 x", ProcNetEntry{}, false},
		{"0100007F:0016 00000000:0000 0A 0 0 0 0 0", ProcNetEntry{}, false},
	}
	for _, tc := range tests {
		got, ok := ParseProcNetLine(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseProcNetLine(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestLookupConnUID(t *testing.T) {
	dir := t.TempDir()
	writeProcNet(t, dir, "tcp", []procRow{
		{"127.0.0.1:113", "0.0.0.0:0", tcpListen, 0},
		{"127.0.0.1:6000", "127.0.0.1:40000", tcpTimeWait, 0},
		{"127.0.0.1:6000", "127.0.0.1:40001", 1, 1001},
		{"127.0.0.2:6000", "127.0.0.1:40002", 1, 1002},
	})
	writeProcNet(t, dir, "tcp6", []procRow{
		{"[::1]:7000", "[::1]:50000", 1, 2001},
		{"[::ffff:127.0.0.1]:8000", "[::ffff:127.0.0.1]:50001", 1, 2002},
	})
	tests := []struct {
		local, remote string
		uid           int
		err           error
	}{
		{"127.0.0.1:6000", "127.0.0.1:40001", 1001, nil},
		{"127.0.0.1:6000", "127.0.0.1:40000", -1, ErrNoConn}, // TIME_WAIT says uid 0: ignored
		{"127.0.0.1:6000", "127.0.0.1:40002", -1, ErrNoConn}, // other local address
		{"127.0.0.2:6000", "127.0.0.1:40002", 1002, nil},
		{"[::1]:7000", "[::1]:50000", 2001, nil},
		{"127.0.0.1:8000", "127.0.0.1:50001", 2002, nil},                   // v4 query, v4-mapped socket
		{"[::ffff:127.0.0.1]:6000", "[::ffff:127.0.0.1]:40001", 1001, nil}, // mapped query, v4 socket
		{"127.0.0.1:113", "0.0.0.0:0", -1, ErrNoConn},                      // listeners never match
	}
	for _, tc := range tests {
		uid, err := LookupConnUID(dir, netip.MustParseAddrPort(tc.local), netip.MustParseAddrPort(tc.remote))
		if uid != tc.uid || !errors.Is(err, tc.err) {
			t.Errorf("%s -> %s: uid %d, %v; want %d, %v", tc.local, tc.remote, uid, err, tc.uid, tc.err)
		}
	}
	if _, err := LookupConnUID(filepath.Join(dir, "missing"), netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2")); err == nil || errors.Is(err, ErrNoConn) {
		t.Errorf("missing directory: %v, want a read error", err)
	}
}

// authFixture is a fake system: passwd with alice (our own uid, so the
// files we create belong to her) and bob, homes under a temp dir, and a
// /proc/net directory the test fills per query.
type authFixture struct {
	root, procNet     string
	aliceHome, bobUID string
	uid               int
	env               *Env
}

func newAuthFixture(t *testing.T) *authFixture {
	t.Helper()
	root := t.TempDir()
	uid := os.Geteuid()
	f := &authFixture{root: root, procNet: filepath.Join(root, "proc"), aliceHome: filepath.Join(root, "home", "alice"), uid: uid}
	for _, d := range []string{filepath.Join(root, "etc"), f.procNet, f.aliceHome} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	passwd := fmt.Sprintf("alice:x:%d:%d::%s:/bin/sh\nbob:x:%d:%d::/nonexistent:/bin/sh\n", uid, uid, f.aliceHome, uid+1, uid+1)
	if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	f.env = &Env{ProcNet: f.procNet, Users: &sysdb.DB{Root: root}, Limits: Limits{ReadTimeout: 2 * time.Second}}
	return f
}

// query opens an ident connection, registers (when owner >= 0) a
// connection lport<->rport owned by owner in the fake /proc, sends the
// query and returns the reply and the builtin's result.
func (f *authFixture) query(t *testing.T, network, addr string, args []string, q func(l, r uint16) string, owner int) (string, error) {
	t.Helper()
	server, client := tcpPair(t, network, addr)
	la := server.LocalAddr().(*net.TCPAddr).AddrPort()
	ra := server.RemoteAddr().(*net.TCPAddr).AddrPort()
	const lport, rport = 6000, 40001
	var rows []procRow
	if owner >= 0 {
		rows = append(rows, procRow{netip.AddrPortFrom(la.Addr(), lport).String(), netip.AddrPortFrom(ra.Addr(), rport).String(), 1, owner})
	}
	v4, v6 := rows, []procRow(nil)
	if !la.Addr().Is4() {
		v4, v6 = v6, v4
	}
	writeProcNet(t, f.procNet, "tcp", v4)
	writeProcNet(t, f.procNet, "tcp6", v6)
	svc := &service.Service{Name: "auth", Argv: append([]string{"auth"}, args...)}
	done := serve(t, context.Background(), mustStream(t, "auth"), server, svc, f.env)
	if q != nil {
		text := q(lport, rport)
		if _, err := io.WriteString(client, text); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(text, "\n") {
			// An unterminated query ends at EOF.
			_ = client.(*net.TCPConn).CloseWrite()
		}
	}
	got := readAll(t, client, 5*time.Second)
	return string(got), wait(t, done, 5*time.Second)
}

func TestAuth(t *testing.T) {
	std := func(l, r uint16) string { return fmt.Sprintf("%d , %d\r\n", l, r) }
	lit := func(s string) func(l, r uint16) string { return func(uint16, uint16) string { return s } }
	tests := []struct {
		name    string
		args    []string
		query   func(l, r uint16) string
		owner   int // -1: no such connection; -2: uid 2 (not in passwd)
		setup   func(t *testing.T, f *authFixture)
		want    string // regexp, anchored
		wantErr error
	}{
		{name: "real", args: []string{"-r"}, query: std, owner: 0, want: `6000 , 40001 : USERID : UNIX : alice\r\n`},
		{name: "compact query", args: []string{"-r"}, query: lit("6000,40001\n"), owner: 0, want: `6000 , 40001 : USERID : UNIX : alice\r\n`},
		{name: "query at EOF", args: []string{"-r"}, query: lit("6000 , 40001"), owner: 0, want: `6000 , 40001 : USERID : UNIX : alice\r\n`},
		{name: "hidden without -r", args: nil, query: std, owner: 0, want: `6000 , 40001 : ERROR : HIDDEN-USER\r\n`},
		{name: "fallback without -r", args: []string{"-d", "guest"}, query: std, owner: 0, want: `6000 , 40001 : USERID : UNIX : guest\r\n`},
		{name: "no such connection", args: []string{"-r"}, query: std, owner: -1, want: `6000 , 40001 : ERROR : NO-USER\r\n`},
		{name: "fallback for unknown connection", args: []string{"-r", "-dguest"}, query: std, owner: -1, want: `6000 , 40001 : USERID : UNIX : guest\r\n`},
		{name: "uid without passwd entry", args: []string{"-r"}, query: std, owner: -2, want: `6000 , 40001 : ERROR : NO-USER\r\n`},
		{name: "numeric", args: []string{"-ri"}, query: std, owner: 0, want: fmt.Sprintf(`6000 , 40001 : USERID : UNIX : %d\r\n`, os.Geteuid())},
		{name: "os name", args: []string{"-r", "-o", "FreeBSD"}, query: std, owner: 0, want: `6000 , 40001 : USERID : FreeBSD : alice\r\n`},
		{name: "random", args: []string{"-g"}, query: std, owner: -1, want: `6000 , 40001 : USERID : UNIX : [0-9a-z]{32}\r\n`},
		{name: "bad query", args: []string{"-r"}, query: lit("hello\r\n"), owner: 0, want: `0 , 0 : ERROR : INVALID-PORT\r\n`, wantErr: ErrBadRequest},
		{name: "port zero", args: []string{"-r"}, query: lit("0 , 40001\r\n"), owner: 0, want: `0 , 40001 : ERROR : INVALID-PORT\r\n`, wantErr: ErrBadRequest},
		{name: "port too big", args: []string{"-r"}, query: lit("6000 , 65536\r\n"), owner: 0, want: `6000 , 65536 : ERROR : INVALID-PORT\r\n`, wantErr: ErrBadRequest},
		{name: "overlong query", args: []string{"-r"}, query: lit(strings.Repeat("1", 2000)), owner: 0, want: `0 , 0 : ERROR : INVALID-PORT\r\n`, wantErr: ErrBadRequest},
		{name: "timeout", args: []string{"-r", "-t", "0.2"}, query: nil, owner: 0, want: `0 , 0 : ERROR : INVALID-PORT\r\n`, wantErr: ErrBadRequest},
		{name: "noident", args: []string{"-r", "-n"}, query: std, owner: 0,
			setup: func(t *testing.T, f *authFixture) { touch(t, filepath.Join(f.aliceHome, ".noident"), "") },
			want:  `6000 , 40001 : ERROR : HIDDEN-USER\r\n`},
		{name: "noident not asked for", args: []string{"-r"}, query: std, owner: 0,
			setup: func(t *testing.T, f *authFixture) { touch(t, filepath.Join(f.aliceHome, ".noident"), "") },
			want:  `6000 , 40001 : USERID : UNIX : alice\r\n`},
		{name: "fakeid", args: []string{"-r", "-f"}, query: std, owner: 0,
			setup: func(t *testing.T, f *authFixture) {
				touch(t, filepath.Join(f.aliceHome, ".fakeid"), "  wonderland  extra\n")
			},
			want: `6000 , 40001 : USERID : UNIX : wonderland\r\n`},
		{name: "fakeid naming another user", args: []string{"-r", "-f"}, query: std, owner: 0,
			setup: func(t *testing.T, f *authFixture) { touch(t, filepath.Join(f.aliceHome, ".fakeid"), "bob\n") },
			want:  `6000 , 40001 : USERID : UNIX : alice\r\n`},
		{name: "fakeid -F allows another user", args: []string{"-r", "-F"}, query: std, owner: 0,
			setup: func(t *testing.T, f *authFixture) { touch(t, filepath.Join(f.aliceHome, ".fakeid"), "bob\n") },
			want:  `6000 , 40001 : USERID : UNIX : bob\r\n`},
		{name: "fakeid numeric naming a uid", args: []string{"-r", "-f", "-i"}, query: std, owner: 0,
			setup: func(t *testing.T, f *authFixture) {
				touch(t, filepath.Join(f.aliceHome, ".fakeid"), fmt.Sprintf("%d\n", f.uid+1))
			},
			want: fmt.Sprintf(`6000 , 40001 : USERID : UNIX : %d\r\n`, os.Geteuid())},
		{name: "fakeid symlink refused", args: []string{"-r", "-f"}, query: std, owner: 0,
			setup: func(t *testing.T, f *authFixture) {
				target := filepath.Join(f.root, "secret")
				touch(t, target, "topsecret\n")
				if err := os.Symlink(target, filepath.Join(f.aliceHome, ".fakeid")); err != nil {
					t.Fatal(err)
				}
			},
			want: `6000 , 40001 : USERID : UNIX : alice\r\n`},
		{name: "fakeid not asked for", args: []string{"-r"}, query: std, owner: 0,
			setup: func(t *testing.T, f *authFixture) { touch(t, filepath.Join(f.aliceHome, ".fakeid"), "wonderland\n") },
			want:  `6000 , 40001 : USERID : UNIX : alice\r\n`},
		{name: "proc unreadable", args: []string{"-r"}, query: std, owner: 0,
			setup: func(t *testing.T, f *authFixture) { f.env.ProcNet = filepath.Join(f.root, "nowhere") },
			want:  `6000 , 40001 : ERROR : UNKNOWN-ERROR\r\n`, wantErr: os.ErrNotExist},
	}
	for _, lb := range loopbacks {
		for _, tc := range tests {
			t.Run(lb.network+" "+tc.name, func(t *testing.T) {
				f := newAuthFixture(t)
				if tc.setup != nil {
					tc.setup(t, f)
				}
				owner := tc.owner
				switch owner {
				case 0:
					owner = f.uid
				case -2:
					owner = f.uid + 2
				}
				got, err := f.query(t, lb.network, lb.addr, tc.args, tc.query, owner)
				if !regexp.MustCompile(`^` + tc.want + `$`).MatchString(got) {
					t.Errorf("reply %q, want %q", got, tc.want)
				}
				if tc.wantErr == nil && err != nil {
					t.Errorf("returned %v", err)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("returned %v, want %v", err, tc.wantErr)
				}
			})
		}
	}
}

func touch(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAuthFakeIDOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file to another user")
	}
	f := newAuthFixture(t)
	path := filepath.Join(f.aliceHome, ".fakeid")
	touch(t, path, "wonderland\n")
	if err := os.Chown(path, f.uid+1, f.uid+1); err != nil {
		t.Fatal(err)
	}
	got, err := f.query(t, "tcp4", "127.0.0.1:0", []string{"-r", "-f"}, func(l, r uint16) string { return fmt.Sprintf("%d,%d\r\n", l, r) }, f.uid)
	if err != nil || got != "6000 , 40001 : USERID : UNIX : alice\r\n" {
		t.Errorf("a .fakeid owned by someone else was used: %q, %v", got, err)
	}
}

// TestAuthRealConnection asks about a connection this process really
// has open, through the real /proc/net and /etc/passwd.
func TestAuthRealConnection(t *testing.T) {
	me, ok := sysdb.System.LookupUID(os.Geteuid())
	if !ok {
		t.Skipf("uid %d is not in /etc/passwd", os.Geteuid())
	}
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	for _, lb := range loopbacks {
		t.Run(lb.network, func(t *testing.T) {
			// The connection being asked about: a client of "our" service.
			svcSide, clientSide := tcpPair(t, lb.network, lb.addr)
			lport := svcSide.LocalAddr().(*net.TCPAddr).Port
			rport := clientSide.LocalAddr().(*net.TCPAddr).Port
			// The ident exchange, from the same client host.
			server, client := tcpPair(t, lb.network, lb.addr)
			done := serve(t, context.Background(), mustStream(t, "auth"), server,
				&service.Service{Name: "auth", ServerArgs: []string{"-r"}}, &Env{})
			fmt.Fprintf(client, "%d , %d\r\n", lport, rport)
			got := string(readAll(t, client, 5*time.Second))
			want := fmt.Sprintf("%d , %d : USERID : UNIX : %s\r\n", lport, rport, me.Name)
			if got != want {
				t.Errorf("got %q, want %q", got, want)
			}
			if err := wait(t, done, 5*time.Second); err != nil {
				t.Error(err)
			}
			// A pair nobody has open.
			server, client = tcpPair(t, lb.network, lb.addr)
			done = serve(t, context.Background(), mustStream(t, "auth"), server,
				&service.Service{Name: "auth", ServerArgs: []string{"-r"}}, &Env{})
			fmt.Fprintf(client, "%d , 1\r\n", lport)
			got = string(readAll(t, client, 5*time.Second))
			if want := fmt.Sprintf("%d , 1 : ERROR : NO-USER\r\n", lport); got != want {
				t.Errorf("unknown pair: got %q, want %q", got, want)
			}
			_ = wait(t, done, 5*time.Second)
		})
	}
}

func TestParseAuthOptions(t *testing.T) {
	tests := []struct {
		args    []string
		want    AuthOptions
		wantErr bool
	}{
		{nil, AuthOptions{}, false},
		{[]string{"-r"}, AuthOptions{Real: true}, false},
		{[]string{"-rin"}, AuthOptions{Real: true, Numeric: true, NoIdent: true}, false},
		{[]string{"-d", "guest", "-r"}, AuthOptions{Real: true, Fallback: "guest"}, false},
		{[]string{"-dguest"}, AuthOptions{Fallback: "guest"}, false},
		{[]string{"-rdguest"}, AuthOptions{Real: true, Fallback: "guest"}, false},
		{[]string{"-f"}, AuthOptions{FakeID: true}, false},
		{[]string{"-F"}, AuthOptions{FakeID: true, FakeIDAny: true}, false},
		{[]string{"-g"}, AuthOptions{Random: true}, false},
		{[]string{"-o", "FreeBSD"}, AuthOptions{OSName: "FreeBSD"}, false},
		{[]string{"-t", "30"}, AuthOptions{Timeout: 30 * time.Second}, false},
		{[]string{"-t2.5"}, AuthOptions{Timeout: 2500 * time.Millisecond}, false},
		{[]string{"-r", "--", "-n"}, AuthOptions{Real: true}, false},
		{[]string{"-r", "word", "-n"}, AuthOptions{Real: true}, false},
		{[]string{"-x", "-r"}, AuthOptions{Real: true}, true},
		{[]string{"-t", "-1"}, AuthOptions{}, true},
		{[]string{"-t", "1h"}, AuthOptions{}, true},
		{[]string{"-t", "0"}, AuthOptions{}, true},
		{[]string{"-d"}, AuthOptions{}, true},
		{[]string{"-d", "two words"}, AuthOptions{}, true},
		{[]string{"-o", "a\r\nb"}, AuthOptions{}, true},
	}
	for _, tc := range tests {
		got, err := ParseAuthOptions(tc.args)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseAuthOptions(%q) = %+v, %v; want %+v, error %v", tc.args, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestAuthArgs(t *testing.T) {
	tests := []struct {
		svc  *service.Service
		want []string
	}{
		{nil, nil},
		{&service.Service{Argv: []string{"auth", "-r"}}, []string{"-r"}},
		{&service.Service{Argv: []string{"-r"}}, []string{"-r"}},
		{&service.Service{Argv: []string{"", "-r"}}, []string{"-r"}},
		{&service.Service{ServerArgs: []string{"-r", "-n"}}, []string{"-r", "-n"}},
	}
	for _, tc := range tests {
		if got := authArgs(tc.svc); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("authArgs(%+v) = %q, want %q", tc.svc, got, tc.want)
		}
	}
}

func TestParseAuthQuery(t *testing.T) {
	tests := []struct {
		in     string
		l, r   int
		wantOK bool
	}{
		{"6191, 23", 6191, 23, true},
		{"6191 , 23", 6191, 23, true},
		{" 6191 ,23 \r", 6191, 23, true},
		{"\t1\t,\t65535\t", 1, 65535, true},
		{"6191 23", 0, 0, false},
		{"6191,", 0, 0, false},
		{",23", 0, 0, false},
		{"6191,23x", 0, 0, false},
		{"6191,23,5", 0, 0, false},
		{"+6191,23", 0, 0, false},
		{"123456,1", 0, 0, false},
		{"0,23", 0, 23, false},
		{"65536,1", 65536, 1, false},
		{"", 0, 0, false},
	}
	for _, tc := range tests {
		l, r, err := ParseAuthQuery([]byte(tc.in))
		if l != tc.l || r != tc.r || (err == nil) != tc.wantOK {
			t.Errorf("ParseAuthQuery(%q) = %d, %d, %v; want %d, %d, ok=%v", tc.in, l, r, err, tc.l, tc.r, tc.wantOK)
		}
		if err != nil && !errors.Is(err, ErrBadRequest) {
			t.Errorf("ParseAuthQuery(%q) error %v does not wrap ErrBadRequest", tc.in, err)
		}
	}
}

func TestParseFakeID(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"name\n", "name", true},
		{"  \tname  more\n", "name", true},
		{"name\r\n", "name", true},
		{strings.Repeat("n", 40), strings.Repeat("n", 32), true},
		{"", "", false},
		{"   \n", "", false},
		{"bad\x01name", "", false},
	}
	for _, tc := range tests {
		got, ok := ParseFakeID([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseFakeID(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzAuthQuery(f *testing.F) {
	for _, s := range []string{"6191, 23", "1,65535", "0,0", " 12 , 34 \r", "65536,1", "x", "", "1,2,3", "99999,99999"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		l, r, err := ParseAuthQuery(in)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			if l < 0 || l > 99999 || r < 0 || r > 99999 {
				t.Fatalf("error result echoes %d, %d", l, r)
			}
			return
		}
		if l < 1 || l > 65535 || r < 1 || r > 65535 {
			t.Fatalf("accepted ports %d, %d", l, r)
		}
		l2, r2, err := ParseAuthQuery([]byte(fmt.Sprintf("%d , %d", l, r)))
		if err != nil || l2 != l || r2 != r {
			t.Fatalf("reformatted query did not round-trip: %d, %d, %v", l2, r2, err)
		}
	})
}

func FuzzAuthOptions(f *testing.F) {
	f.Add("-r -d guest -t 2.5 -o FreeBSD")
	f.Add("-rinfF -g -dx")
	f.Add("-t -- -x")
	f.Fuzz(func(t *testing.T, s string) {
		o, _ := ParseAuthOptions(strings.Fields(s))
		if o.Fallback != "" {
			if _, ok := identToken(o.Fallback, maxIdentName); !ok {
				t.Fatalf("unusable fallback %q accepted", o.Fallback)
			}
		}
		if o.OSName != "" && strings.ContainsAny(o.OSName, " \t\r\n") {
			t.Fatalf("unusable os name %q accepted", o.OSName)
		}
		if o.Timeout < 0 {
			t.Fatalf("negative timeout %v", o.Timeout)
		}
		if o.FakeIDAny && !o.FakeID {
			t.Fatal("-F without -f semantics")
		}
	})
}

func FuzzProcNetLine(f *testing.F) {
	f.Add("   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345")
	f.Add("   1: 00000000000000000000000001000000:0035 00000000000000000000000001000000:C350 01 0:0 0:0 0 105 0 1")
	f.Add(procHeader)
	f.Fuzz(func(t *testing.T, line string) {
		e, ok := ParseProcNetLine(line)
		if !ok {
			return
		}
		for _, ap := range []netip.AddrPort{e.Local, e.Remote} {
			back, ok := parseProcAddr(formatProcAddr(ap))
			if !ok || back != ap {
				t.Fatalf("%v does not round-trip (%v)", ap, back)
			}
		}
		if e.UID < 0 || e.State < 0 || e.State > 255 {
			t.Fatalf("bad entry %+v", e)
		}
	})
}

func FuzzParseFakeID(f *testing.F) {
	f.Add([]byte("name\n"))
	f.Add([]byte(" \t x y"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, ok := ParseFakeID(in)
		if !ok {
			return
		}
		if s == "" || len(s) > maxIdentName || strings.ContainsAny(s, " \t\r\n\x00") {
			t.Fatalf("bad identity %q", s)
		}
	})
}
