package logging

import (
	"bytes"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// MetricsPath is the one path the metrics listener serves.
const MetricsPath = "/metrics"

// Bounds of the metrics listener. Anyone metrics_only_from admits (by
// default, everyone who can reach the address) can connect to it, so a
// connection is given a few seconds to say what it wants and to take
// the answer, and only so many may be open at once.
const (
	MetricsHeaderTimeout = 5 * time.Second
	MetricsReadTimeout   = 10 * time.Second
	MetricsWriteTimeout  = 10 * time.Second
	MetricsIdleTimeout   = 10 * time.Second
	MetricsMaxHeader     = 8 << 10
	MetricsMaxConns      = 32
)

// MetricsHandler serves the Prometheus text of state() for GET and HEAD
// of MetricsPath to the clients allow admits. Other clients get 403
// whatever they ask, other paths 404, other methods 405. Scrapes that
// arrive while one is being rendered share its answer, so a crowd of
// scrapers costs the daemon one snapshot at a time.
func MetricsHandler(allow func(netip.Addr) bool, state func() *DumpState) http.Handler {
	r := &metricsRenderer{state: state}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ap, err := netip.ParseAddrPort(req.RemoteAddr)
		if err != nil || !allow(ap.Addr().Unmap()) {
			// Nothing more to say to this client: do not keep it.
			w.Header().Set("Connection", "close")
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if req.URL.Path != MetricsPath {
			http.NotFound(w, req)
			return
		}
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body := r.render()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if req.Method == http.MethodHead {
			return
		}
		w.Write(body)
	})
}

// metricsRenderer lets concurrent scrapes share one rendering.
type metricsRenderer struct {
	state   func() *DumpState
	mu      sync.Mutex
	cur     *renderCall
	waiters int // scrapes waiting for cur (tests watch it)
}

type renderCall struct {
	done chan struct{}
	body []byte
}

func (r *metricsRenderer) render() []byte {
	r.mu.Lock()
	if c := r.cur; c != nil {
		r.waiters++
		r.mu.Unlock()
		<-c.done
		r.mu.Lock()
		r.waiters--
		r.mu.Unlock()
		return c.body
	}
	c := &renderCall{done: make(chan struct{})}
	r.cur = c
	r.mu.Unlock()
	var b bytes.Buffer
	WriteMetrics(&b, r.state())
	c.body = b.Bytes()
	r.mu.Lock()
	r.cur = nil
	r.mu.Unlock()
	close(c.done)
	return c.body
}

// NewMetricsServer returns the http.Server for the metrics listener,
// with every timeout set: net/http has none by default, so one client
// could hold a connection (and a goroutine) open for ever.
func NewMetricsServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: MetricsHeaderTimeout, ReadTimeout: MetricsReadTimeout,
		WriteTimeout: MetricsWriteTimeout, IdleTimeout: MetricsIdleTimeout, MaxHeaderBytes: MetricsMaxHeader}
}

// LimitListener closes, at once, connections beyond max open at the
// same time, rather than letting them queue: a scraper retries, and the
// connections an attacker holds open cannot grow the daemon.
func LimitListener(ln net.Listener, max int) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, max)}
}

type limitListener struct {
	net.Listener
	sem chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			c.Close()
		}
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
