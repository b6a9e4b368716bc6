package builtins

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// loopbacks are the only addresses tests use.
var loopbacks = []struct{ network, addr string }{
	{"tcp4", "127.0.0.1:0"},
	{"tcp6", "[::1]:0"},
}

// tcpPair returns the two ends of a real loopback TCP connection:
// server is the accepted side, client the dialled one.
func tcpPair(t testing.TB, network, addr string) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s %s: %v", network, addr, err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	client, err = net.DialTimeout(network, ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatalf("accept: %v", r.err)
	}
	t.Cleanup(func() { r.c.Close(); client.Close() })
	return r.c, client
}

// serve runs a StreamFunc on server in the background; the returned
// channel yields its result. The test fails if it does not finish
// within the time limit.
func serve(t testing.TB, ctx context.Context, f StreamFunc, server net.Conn, svc *service.Service, env *Env) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f(ctx, server, svc, env) }()
	return done
}

func wait(t testing.TB, done <-chan error, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("builtin did not return within %v", limit)
		return nil
	}
}

// readAll reads until EOF with an overall deadline.
func readAll(t testing.TB, c net.Conn, limit time.Duration) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(limit))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) && !peerGone(err) {
		t.Fatalf("read: %v (after %d bytes)", err, len(b))
	}
	return b
}

func mustStream(t testing.TB, name string) StreamFunc {
	t.Helper()
	f, ok := Stream(name)
	if !ok {
		t.Fatalf("Stream(%q) not found", name)
	}
	return f
}

func mustDgram(t testing.TB, name string) DgramFunc {
	t.Helper()
	f, ok := Dgram(name)
	if !ok {
		t.Fatalf("Dgram(%q) not found", name)
	}
	return f
}
