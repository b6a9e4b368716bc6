package inetd

import (
	"slices"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

func TestDetect(t *testing.T) {
	cases := []struct {
		name, text, want string
		reason           string // part of the reason
		against          bool   // signals that do not fit are reported
	}{
		{"nothing", "ftp stream tcp nowait root /usr/sbin/ftpd ftpd\n", "linux", "nothing in the file", false},
		{"freebsd header", "# $FreeBSD$\nftp stream tcp nowait root /usr/libexec/ftpd ftpd -l\n", "freebsd", "$FreeBSD$ header (line 1)", false},
		{"openbsd header expanded", "#\t$OpenBSD: inetd.conf,v 1.57 2020/01/01 00:00:00 x Exp $\nftp stream tcp nowait root /usr/libexec/ftpd ftpd\n", "openbsd", "$OpenBSD$ header", false},
		{"netbsd header", "#\t$NetBSD: inetd.conf,v 1.2 $\n", "netbsd", "$NetBSD$ header", false},
		{"freebsd limits", "ftp stream tcp nowait/10/20/5 root /usr/libexec/ftpd ftpd\n", "freebsd", "/max-child", false},
		{"tcp46", "ftp stream tcp46 nowait root /usr/libexec/ftpd ftpd\n", "linux", "tcp46", false},
		{"tcp46 and slash", "ftp stream tcp46 nowait/3 root /usr/libexec/ftpd ftpd\n", "freebsd", "tcp46", false},
		{"dot rate", "ftp stream tcp nowait.30 root /usr/sbin/ftpd ftpd\n", "linux", ".N rates", false},
		{"colon rate", "ftp stream tcp nowait:30 root /usr/sbin/ftpd ftpd\n", "netbsd", ":N rates", false},
		{"host prefix", "127.0.0.1:ftp stream tcp nowait root /usr/sbin/ftpd ftpd\n", "linux", "listen-address prefixes", false},
		{"pair without header", "ftp stream tcp nowait root /usr/libexec/ftpd ftpd\nftp stream tcp6 nowait root /usr/libexec/ftpd ftpd\n", "openbsd", "ftp on both plain tcp", false},
		{"pair with prefix", "127.0.0.1:daytime stream tcp nowait root internal\n[::1]:daytime stream tcp6 nowait root internal\n", "openbsd", "daytime on both", false},
		{"key=value", "echo on socktype=stream, protocol=tcp4, wait=no, user=root, exec=internal;\n", "netbsd", "key=value", false},
		{"include", ".include \"inetd.d/*\"\n", "netbsd", ".include", false},
		{"login class", "ftp stream tcp nowait root/daemon /usr/libexec/ftpd ftpd\n", "freebsd", "login-class", false},
		{"debian off", "#<off># ftp stream tcp nowait root /usr/sbin/tcpd in.ftpd\n", "linux", "#<off>#", false},
		{"disagree", "# $FreeBSD$\nftp stream tcp nowait.30 root /usr/libexec/ftpd ftpd\n", "freebsd", "$FreeBSD$", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Detect([]byte(c.text))
			if d.Dialect != c.want || !strings.Contains(d.Reason(), c.reason) {
				t.Errorf("Detect = %s (%s), want %s (%s)", d.Dialect, d.Reason(), c.want, c.reason)
			}
			if (len(d.Against) > 0) != c.against {
				t.Errorf("against = %v, want any: %v", d.Against, c.against)
			}
		})
	}
}

// TestDetectKeepsOpenBSDsTCP6: an OpenBSD file lists a service once for
// tcp and once for tcp6. Read as Linux (plain tcp on both families) the
// second line clashes with the first; recognised as OpenBSD both serve.
func TestDetectKeepsOpenBSDsTCP6(t *testing.T) {
	text := "#\t$OpenBSD: inetd.conf,v 1.1 $\n" +
		"daytime\tstream\ttcp\tnowait\troot\tinternal\n" +
		"daytime\tstream\ttcp6\tnowait\troot\tinternal\n"
	for _, c := range []struct {
		dialect string
		clash   bool
	}{{"", false}, {"linux", true}} {
		svcs, diags := Parse("o.conf", []byte(text), Options{Sys: testDB(t), Dialect: c.dialect})
		if got := hasDiag(diags, CodeDuplicate); got != c.clash {
			t.Errorf("dialect %q: W-DUPLICATE %v, want %v\n%v", c.dialect, got, c.clash, diags)
		}
		if c.dialect == "" {
			if len(svcs) != 2 || svcs[0].Family != service.FamilyIPv4 || svcs[1].Family != service.FamilyIPv6 {
				t.Fatalf("services: %+v", svcs)
			}
			if !hasDiag(diags, CodeDialectChosen) || !strings.Contains(diags.Error(), "read as the openbsd inetd.conf dialect: $OpenBSD$ header (line 1)") {
				t.Errorf("the choice and its reason are not reported:\n%v", diags)
			}
		} else if !hasDiag(diags, CodeDialectSignals) {
			t.Errorf("-dialect linux against an OpenBSD file must warn:\n%v", diags)
		}
	}
}

func hasDiag(ds service.Diags, code string) bool {
	return slices.ContainsFunc(ds, func(d service.Diag) bool { return d.Code == code })
}

// FuzzDetect: any text gets a known dialect, the same one every time, and
// the reasons never name a line outside the text.
func FuzzDetect(f *testing.F) {
	f.Add([]byte("# $FreeBSD$\nftp stream tcp46 nowait/1/2/3 root/c /x x\n"))
	f.Add([]byte("a:\nx on a=b;\nftp stream tcp nowait.3 root /x x\nftp stream tcp6 nowait:3 root /x x\n"))
	f.Add([]byte(".include x\n#@ p\n#<off># x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := Detect(data)
		if !slices.Contains(Dialects, d.Dialect) {
			t.Fatalf("unknown dialect %q", d.Dialect)
		}
		if d2 := Detect(data); d2.Dialect != d.Dialect || d2.Reason() != d.Reason() {
			t.Fatalf("not deterministic: %v vs %v", d, d2)
		}
		if n := strings.Count(string(data), "\n") + 1; d.Line > n {
			t.Fatalf("line %d outside %d lines", d.Line, n)
		}
	})
}
