package sysdb

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLookups(t *testing.T) {
	db := &DB{Root: "testdata"}
	if p, ok := db.ServicePort("echo", "udp"); !ok || p != 7 {
		t.Errorf("echo/udp = %d, %v", p, ok)
	}
	if p, ok := db.ServicePort("ident", "tcp"); !ok || p != 113 {
		t.Errorf("alias ident/tcp = %d, %v", p, ok)
	}
	if _, ok := db.ServicePort("ftp", "udp"); ok {
		t.Errorf("ftp/udp should be unknown")
	}
	if n, ok := db.ServiceName(113, "tcp"); !ok || n != "auth" {
		t.Errorf("113/tcp = %q", n)
	}
	if n, ok := db.Protocol("TCP"); !ok || n != 6 {
		t.Errorf("TCP = %d", n)
	}
	if n, ok := db.RPC("rup"); !ok || n != 100001 {
		t.Errorf("rup = %d", n)
	}
	if n, ok := db.Network("loopback"); !ok || n != "127" {
		t.Errorf("loopback = %q", n)
	}
	u, ok := db.LookupUser("nobody")
	if !ok || u.UID != 65534 || u.GID != 65534 {
		t.Errorf("nobody = %+v", u)
	}
	if _, ok := db.LookupUser("mallory"); ok {
		t.Errorf("mallory should be unknown")
	}
	if g, ok := db.LookupGID(50); !ok || g.Name != "staff" {
		t.Errorf("gid 50 = %+v", g)
	}
	if got := db.GroupIDs("alice", 1000); !reflect.DeepEqual(got, []int{1000, 10, 50}) {
		t.Errorf("GroupIDs(alice) = %v", got)
	}
}

func TestMissingFilesStillKnowTCP(t *testing.T) {
	db := &DB{Root: t.TempDir()}
	if n, ok := db.Protocol("udp"); !ok || n != 17 {
		t.Errorf("udp = %d, %v", n, ok)
	}
	if _, ok := db.ServicePort("echo", "tcp"); ok {
		t.Errorf("empty root should know no services")
	}
}

func TestRefreshRereads(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("alice:x:1000:1000::/home/alice:/bin/sh\n")
	db := &DB{Root: root}
	if _, ok := db.LookupUser("bob"); ok {
		t.Fatal("bob does not exist yet")
	}
	write("alice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n")
	if _, ok := db.LookupUser("bob"); ok {
		t.Fatal("lookups are cached until Refresh")
	}
	db.Refresh()
	if u, ok := db.LookupUser("bob"); !ok || u.UID != 1001 {
		t.Fatalf("after Refresh bob = %+v, %v", u, ok)
	}
}

// TestSystemUsersAndGroups: the real system's databases answer (through
// NSS in a cgo build), unknown names stay unknown, and a Root reads its
// own files whatever NSS knows.
func TestSystemUsersAndGroups(t *testing.T) {
	db := &DB{}
	if u, ok := db.LookupUser("root"); !ok || u.UID != 0 || u.GID != 0 {
		t.Errorf("root = %+v %v", u, ok)
	}
	if u, ok := db.LookupUID(0); !ok || u.Name != "root" {
		t.Errorf("uid 0 = %+v %v", u, ok)
	}
	if g, ok := db.LookupGroup("root"); !ok || g.GID != 0 {
		t.Errorf("group root = %+v %v", g, ok)
	}
	if g, ok := db.LookupGID(0); !ok || g.Name != "root" {
		t.Errorf("gid 0 = %+v %v", g, ok)
	}
	for i := 0; i < 2; i++ { // the second answer comes from the cache
		if _, ok := db.LookupUser("gxinetd-no-such-user"); ok {
			t.Errorf("unknown user found")
		}
		if _, ok := db.LookupGroup("gxinetd-no-such-group"); ok {
			t.Errorf("unknown group found")
		}
	}
	if ids := db.GroupIDs("root", 0); len(ids) == 0 || ids[0] != 0 {
		t.Errorf("GroupIDs(root) = %v", ids)
	}
	files := &DB{Root: "testdata"}
	if _, ok := files.LookupUser("root"); ok != fileHas(t, "testdata/etc/passwd", "root:") {
		t.Errorf("a Root answered from outside its files")
	}
}

func fileHas(t *testing.T, path, prefix string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// TestEachFileReadOnFirstNeed: a lookup reads only the database it asks
// (a start-up that needs a protocol number does not read /etc/services,
// rpc, networks, passwd and group), and each file is then kept until
// Refresh like before.
func TestEachFileReadOnFirstNeed(t *testing.T) {
	root := t.TempDir()
	etc := filepath.Join(root, "etc")
	os.MkdirAll(etc, 0o755)
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(etc, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("protocols", "tcp 6 TCP\n")
	db := &DB{Root: root}
	if n, ok := db.Protocol("tcp"); !ok || n != 6 {
		t.Fatalf("tcp = %d, %v", n, ok)
	}
	// Written after the first lookup: read when first needed.
	write("services", "echo 7/tcp\n")
	write("rpc", "rup 100001\n")
	write("networks", "loopback 127\n")
	write("passwd", "alice:x:1000:1000::/home/alice:/bin/sh\n")
	write("group", "staff:x:50:alice\n")
	if p, ok := db.ServicePort("echo", "tcp"); !ok || p != 7 {
		t.Errorf("echo/tcp = %d, %v: /etc/services was read before it was needed", p, ok)
	}
	if n, ok := db.RPC("rup"); !ok || n != 100001 {
		t.Errorf("rup = %d, %v", n, ok)
	}
	if n, ok := db.Network("loopback"); !ok || n != "127" {
		t.Errorf("loopback = %q, %v", n, ok)
	}
	if u, ok := db.LookupUser("alice"); !ok || u.UID != 1000 {
		t.Errorf("alice = %+v, %v", u, ok)
	}
	if g, ok := db.LookupGID(50); !ok || g.Name != "staff" {
		t.Errorf("gid 50 = %+v, %v", g, ok)
	}
	// Once read, kept until Refresh.
	write("services", "echo 7/tcp\nqotd 17/tcp\n")
	if _, ok := db.ServicePort("qotd", "tcp"); ok {
		t.Error("a file read once is kept until Refresh")
	}
	db.Refresh()
	if p, ok := db.ServicePort("qotd", "tcp"); !ok || p != 17 {
		t.Errorf("after Refresh qotd/tcp = %d, %v", p, ok)
	}
}

// BenchmarkFirstProtocolLookup is what a start-up pays for its first
// `protocol = tcp`: a fresh reading of the system's databases.
func BenchmarkFirstProtocolLookup(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		db := &DB{}
		if n, ok := db.Protocol("tcp"); !ok || n != 6 {
			b.Fatal(n, ok)
		}
	}
}

// TestNumberedFiles: protocols(5) and rpc(5) give every alias the line's
// number; a protocol's first spelling wins and names match in any case,
// an rpc name's last line wins; lines without a number are skipped.
func TestNumberedFiles(t *testing.T) {
	root := t.TempDir()
	etc := filepath.Join(root, "etc")
	os.MkdirAll(etc, 0o755)
	os.WriteFile(filepath.Join(etc, "protocols"), []byte("# c\nsctp 132 SCTP # trailing\nbogus x BOGUS\nSCTP 200\n"), 0o644)
	os.WriteFile(filepath.Join(etc, "rpc"), []byte("portmapper 100000 portmap sunrpc\nrstatd x rstat\nsunrpc 7\n"), 0o644)
	db := &DB{Root: root}
	for _, tc := range []struct {
		name string
		want int
		ok   bool
	}{{"sctp", 132, true}, {"SCTP", 132, true}, {"bogus", 0, false}, {"tcp", 6, true}} {
		if n, ok := db.Protocol(tc.name); ok != tc.ok || n != tc.want {
			t.Errorf("Protocol(%q) = %d, %v; want %d, %v", tc.name, n, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		name string
		want int
		ok   bool
	}{{"portmapper", 100000, true}, {"portmap", 100000, true}, {"sunrpc", 7, true}, {"rstat", 0, false}} {
		if n, ok := db.RPC(tc.name); ok != tc.ok || n != tc.want {
			t.Errorf("RPC(%q) = %d, %v; want %d, %v", tc.name, n, ok, tc.want, tc.ok)
		}
	}
}
