package logging

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// metricsFixture serves MetricsHandler the way the daemon does, on a
// loopback listener of its own (kept open, so the port stays ours).
func metricsFixture(t *testing.T, allow func(netip.Addr) bool, state func() *DumpState) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewMetricsServer(MetricsHandler(allow, state))
	go srv.Serve(LimitListener(ln, MetricsMaxConns))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func someState() *DumpState {
	return &DumpState{Counters: []ServiceCounters{{ID: "echo", Served: 3}}}
}

// rawHTTP sends req on a fresh connection and returns the status line
// and the whole response.
func rawHTTP(t *testing.T, addr, req string) (string, string) {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, req)
	b, _ := io.ReadAll(c)
	status, _, _ := strings.Cut(string(b), "\r\n")
	return status, string(b)
}

func TestMetricsHandlerMethodsAndPaths(t *testing.T) {
	addr := metricsFixture(t, func(netip.Addr) bool { return true }, someState)
	cases := []struct {
		req, status string
		body        bool
	}{
		{"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 OK", true},
		{"GET /metrics HTTP/1.0\r\n\r\n", "HTTP/1.0 200 OK", true},
		{"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 OK", false},
		{"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "HTTP/1.1 405 Method Not Allowed", false},
		{"DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 405 Method Not Allowed", false},
		{"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 404 Not Found", false},
		{"GET /metrics/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 404 Not Found", false},
		{"GET /../metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "", false},
	}
	for _, tc := range cases {
		status, all := rawHTTP(t, addr, tc.req)
		if tc.status != "" && status != tc.status {
			t.Errorf("%q: status %q, want %q", strings.SplitN(tc.req, "\r\n", 2)[0], status, tc.status)
		}
		if has := strings.Contains(all, `gxinetd_connections_total{service="echo"} 3`); has != tc.body {
			t.Errorf("%q: metrics in the answer: %v, want %v\n%s", strings.SplitN(tc.req, "\r\n", 2)[0], has, tc.body, all)
		}
		if strings.HasPrefix(tc.req, "HEAD") && !strings.Contains(all, "Content-Length: ") {
			t.Errorf("HEAD: no Content-Length\n%s", all)
		}
		if strings.Contains(status, "405") && !strings.Contains(all, "Allow: GET, HEAD") {
			t.Errorf("405 without Allow\n%s", all)
		}
	}
}

func TestMetricsHandlerForbidden(t *testing.T) {
	addr := metricsFixture(t, func(netip.Addr) bool { return false }, someState)
	for _, path := range []string{"/metrics", "/other"} {
		status, all := rawHTTP(t, addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if status != "HTTP/1.1 403 Forbidden" || strings.Contains(all, "gxinetd_") {
			t.Errorf("%s from a client not allowed: %q\n%s", path, status, all)
		}
	}
}

// TestMetricsIdleConnectionClosed: a client that keeps its connection
// after a scrape, or never sends a request, is dropped (the old server
// set no idle timeout: a kept-alive connection stayed open for ever).
func TestMetricsIdleConnectionClosed(t *testing.T) {
	t.Parallel()
	addr := metricsFixture(t, func(netip.Addr) bool { return true }, someState)
	for _, tc := range []struct {
		name, req string
		limit     time.Duration
	}{
		{"kept alive", "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", MetricsIdleTimeout},
		{"silent", "", MetricsHeaderTimeout},
		{"half a request", "GET /metrics HTTP/1.1\r\nHost:", MetricsHeaderTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp4", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tc.req)
			begin := time.Now()
			c.SetReadDeadline(begin.Add(tc.limit + 10*time.Second))
			r := bufio.NewReader(c)
			if tc.name == "kept alive" {
				resp, err := http.ReadResponse(r, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				t.Fatalf("connection not closed by the server within %v: %v", tc.limit+10*time.Second, err)
			}
		})
	}
}

// TestMetricsConnectionCap: connections beyond the cap are closed at
// once, and a scrape succeeds again when the holders go.
func TestMetricsConnectionCap(t *testing.T) {
	addr := metricsFixture(t, func(netip.Addr) bool { return true }, someState)
	var held []net.Conn
	for i := 0; i < MetricsMaxConns; i++ {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// Every slot is taken once the server has accepted them all: the
	// next connection is then closed without an answer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _ := rawHTTP(t, addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if status == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection %d answered %q", MetricsMaxConns+1, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range held {
		c.Close()
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		status, _ := rawHTTP(t, addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if status == "HTTP/1.1 200 OK" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the holders left: %q", status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMetricsScrapesShareRendering: scrapes that arrive during a
// rendering take its answer instead of a snapshot of their own.
func TestMetricsScrapesShareRendering(t *testing.T) {
	var calls atomic.Int32
	gate := make(chan struct{})
	r := &metricsRenderer{state: func() *DumpState {
		if calls.Add(1) == 1 {
			<-gate // hold the first rendering until the others wait for it
		}
		return someState()
	}}
	var wg sync.WaitGroup
	bodies := make(chan []byte, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); bodies <- r.render() }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		n := r.waiters
		r.mu.Unlock()
		if n == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d scrapes waiting, want 7", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(gate)
	wg.Wait()
	close(bodies)
	for b := range bodies {
		if !strings.Contains(string(b), `service="echo"`) {
			t.Errorf("body %q", b)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("8 concurrent scrapes took the state %d times, want 1", n)
	}
	if r.render(); calls.Load() != 2 {
		t.Error("a later scrape did not take a fresh state")
	}
}
