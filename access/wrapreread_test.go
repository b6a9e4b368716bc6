package access

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWrapTablesFollowEdits: an edit of hosts.deny (DenyHosts appends to
// it) or a replaced hosts.allow takes effect without Configure, within
// wrapCheckInterval of request time, as with libwrap; nothing is re-read
// while the files stay the same.
func TestWrapTablesFollowEdits(t *testing.T) {
	dir := t.TempDir()
	allow := filepath.Join(dir, "hosts.allow")
	deny := writeFile(t, filepath.Join(dir, "hosts.deny"), "# nothing yet\n")
	s := svc("sshd")
	s.Flags = 0
	s.Server = "/usr/sbin/sshd"
	e, n := newEngine(t, Global{HostsAllow: allow, HostsDeny: deny}, s)
	now := time.Now()
	decide := func(peer string, at time.Time) bool {
		t.Helper()
		d := e.Decide(context.Background(), Request{Service: s, Peer: ap(peer), Now: at})
		d.Lease.Release()
		return d.Allow
	}
	if !decide("127.0.0.2", now) {
		t.Fatal("no rules: must allow")
	}
	f, err := os.OpenFile(deny, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("sshd: 127.0.0.2\n")
	f.Close()
	// Within the interval the old tables still decide.
	if !decide("127.0.0.2", now.Add(wrapCheckInterval/2)) {
		t.Error("re-read before the interval passed")
	}
	at := now.Add(2 * wrapCheckInterval)
	if decide("127.0.0.2", at) {
		t.Error("appended hosts.deny rule not obeyed after the interval")
	}
	if !decide("127.0.0.3", at) {
		t.Error("other clients must stay allowed")
	}
	if c := n.count("tcp_wrappers tables changed"); c != 1 {
		t.Errorf("%d re-read notices, want 1: %q", c, n.all())
	}
	// A new hosts.allow written by rename wins over hosts.deny.
	tmp := writeFile(t, filepath.Join(dir, "allow.new"), "sshd: 127.0.0.2\n")
	if err := os.Rename(tmp, allow); err != nil {
		t.Fatal(err)
	}
	at = at.Add(2 * wrapCheckInterval)
	if !decide("127.0.0.2", at) {
		t.Error("replaced hosts.allow not obeyed")
	}
	// Unchanged files are not read again.
	for i := 0; i < 5; i++ {
		at = at.Add(2 * wrapCheckInterval)
		decide("127.0.0.2", at)
	}
	if c := n.count("tcp_wrappers tables changed"); c != 2 {
		t.Errorf("%d re-read notices, want 2: %q", c, n.all())
	}
	// -nolibwrap never looks.
	e2, n2 := newEngine(t, Global{HostsAllow: allow, HostsDeny: deny, NoLibwrap: true}, s)
	os.WriteFile(deny, []byte("ALL: ALL\n"), 0o644)
	d := e2.Decide(context.Background(), Request{Service: s, Peer: ap("127.0.0.2"), Now: now.Add(time.Hour)})
	if !d.Allow || n2.count("tcp_wrappers") != 0 {
		t.Errorf("-nolibwrap engine consulted the files: %v %q", d.Allow, n2.all())
	}
}

// TestWrapPatternFilesFollowEdits: tcp_wrappers reads a /path pattern
// file at every match; the engine re-reads the tables when the file
// changes (or appears), within wrapCheckInterval of request time.
func TestWrapPatternFilesFollowEdits(t *testing.T) {
	dir := t.TempDir()
	blocked := filepath.Join(dir, "blocked")
	deny := writeFile(t, filepath.Join(dir, "hosts.deny"), "sshd: "+blocked+"\n")
	s := svc("sshd")
	s.Flags = 0
	s.Server = "/usr/sbin/sshd"
	e, _ := newEngine(t, Global{HostsAllow: filepath.Join(dir, "hosts.allow"), HostsDeny: deny}, s)
	now := time.Now()
	decide := func(peer string, at time.Time) bool {
		t.Helper()
		d := e.Decide(context.Background(), Request{Service: s, Peer: ap(peer), Now: at})
		d.Lease.Release()
		return d.Allow
	}
	if !decide("127.0.0.2", now) {
		t.Fatal("a missing pattern file matches nothing: must allow")
	}
	writeFile(t, blocked, "127.0.0.2\n")
	if decide("127.0.0.2", now.Add(2*wrapCheckInterval)) {
		t.Error("a client listed in a new pattern file was allowed")
	}
	writeFile(t, blocked, "127.0.0.9 127.0.0.10\n")
	if !decide("127.0.0.2", now.Add(4*wrapCheckInterval)) {
		t.Error("a client removed from the pattern file is still refused")
	}
}
