package logging

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/testnet"
)

func TestParseIdentReply(t *testing.T) {
	tests := []struct {
		line         string
		rport, lport uint16
		want         string
		ok           bool
	}{
		{"42406 , 11001 : USERID : UNIX : alice  ", 42406, 11001, "UNIX : alice  ", true},
		{"42406,11001:USERID:UNIX:alice", 42406, 11001, "UNIX:alice", true},
		{"\t42406\t,\t11001\t:\tUSERID\t:\t UNIX,utf-8 : bob", 42406, 11001, "UNIX,utf-8 : bob", true},
		{"+42406,11001:USERID:x", 42406, 11001, "x", true},
		{"42406,11001:USERID:x\x00tail", 42406, 11001, "x", true},
		{"42406,11002:USERID:UNIX:alice", 42406, 11001, "", false}, // wrong local port
		{"1,11001:USERID:UNIX:alice", 42406, 11001, "", false},     // wrong remote port
		{"42406,11001:ERROR:NO-USER", 42406, 11001, "", false},     // an error reply
		{"42406,11001:USERIDX", 42406, 11001, "", false},           // no colon after USERID
		{"42406,11001:USERID:   ", 42406, 11001, "", false},        // nothing after it
		{"42406 11001:USERID:UNIX:alice", 42406, 11001, "", false}, // no comma
		{"42406,11001 USERID UNIX alice", 42406, 11001, "", false}, // no colon
		{"4x,11001:USERID:UNIX:alice", 4, 11001, "", false},        // junk in a number
		{"-1,11001:USERID:UNIX:alice", 65535, 11001, "", false},    // negative
		{"42406,11001:userid:UNIX:alice", 42406, 11001, "", false}, // case matters, as in xinetd
		{"", 1, 1, "", false},
	}
	for _, tc := range tests {
		got, ok := parseIdentReply(tc.line, tc.rport, tc.lport)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseIdentReply(%q) = %q, %v; want %q, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseIdentReply(f *testing.F) {
	f.Add("42406 , 11001 : USERID : UNIX : alice  ", uint16(42406), uint16(11001))
	f.Add("1,2:USERID:OTHER:x\x00", uint16(1), uint16(2))
	f.Add("1,2:ERROR:HIDDEN-USER", uint16(1), uint16(2))
	f.Add(" +7 ,\t8\t: USERID :: ", uint16(7), uint16(8))
	f.Fuzz(func(t *testing.T, line string, rport, lport uint16) {
		text, ok := parseIdentReply(line, rport, lport)
		if !ok {
			return
		}
		if text == "" || isSpace(text[0]) || strings.IndexByte(text, 0) >= 0 {
			t.Fatalf("bad text %q from %q", text, line)
		}
		if !strings.Contains(line, text) {
			t.Fatalf("text %q is not part of %q", text, line)
		}
		again, ok := parseIdentReply(fmt.Sprintf("%d,%d:USERID:%s", rport, lport, text), rport, lport)
		if !ok || again != text {
			t.Fatalf("re-parse of %q gave %q, %v", text, again, ok)
		}
	})
}

// identServer answers ident queries on a random 127.0.0.1 / ::1 port.
type identServer struct {
	ln      net.Listener
	queries chan string
	peers   chan netip.Addr
}

func startIdentServer(t *testing.T, network, addr string, answer func(query string, c net.Conn)) *identServer {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	s := &identServer{ln: ln, queries: make(chan string, 10), peers: make(chan netip.Addr, 10)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for i := 0; i < 10; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				s.peers <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
				q, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				s.queries <- q
				answer(q, c)
			}()
		}
	}()
	return s
}

func (s *identServer) port() uint16 { return s.ln.Addr().(*net.TCPAddr).AddrPort().Port() }

func echoPorts(q string) string { return strings.TrimSuffix(q, "\r\n") }

func TestIdentAgainstServer(t *testing.T) {
	local, remote := ap("127.0.0.1:11001"), ap("127.0.0.1:42406")
	tests := []struct {
		name    string
		answer  func(q string, c net.Conn)
		timeout time.Duration
		want    string
		reason  string
	}{
		{"good", func(q string, c net.Conn) {
			fmt.Fprintf(c, "%s : USERID : UNIX : alice  \r\n", strings.ReplaceAll(echoPorts(q), ",", " , "))
		}, 0, "UNIX : alice  ", ""},
		{"split reply", func(q string, c net.Conn) {
			fmt.Fprintf(c, "%s:USERID:UNIX:bob\r", echoPorts(q))
			time.Sleep(20 * time.Millisecond)
			fmt.Fprint(c, "\nignored second line\r\n")
		}, 0, "UNIX:bob", ""},
		{"hostile text", func(q string, c net.Conn) {
			fmt.Fprintf(c, "%s:USERID:UNIX:eve\nSTART: forged\x1b[0m\r\n", echoPorts(q))
		}, 0, "UNIX:eve?START: forged?[0m", ""},
		{"bad response", func(q string, c net.Conn) { fmt.Fprint(c, "garbage\r\n") }, 0, "", IdentBadResp},
		{"wrong ports", func(q string, c net.Conn) { fmt.Fprint(c, "1,2:USERID:UNIX:alice\r\n") }, 0, "", IdentBadResp},
		{"error reply", func(q string, c net.Conn) {
			fmt.Fprintf(c, "%s:ERROR:NO-USER\r\n", echoPorts(q))
		}, 0, "", IdentBadResp},
		{"no CRLF", func(q string, c net.Conn) { fmt.Fprintf(c, "%s:USERID:UNIX:alice\n", echoPorts(q)) }, 0, "", IdentRecvError},
		{"too long", func(q string, c net.Conn) { fmt.Fprint(c, strings.Repeat("x", 2000)+"\r\n") }, 0, "", IdentRecvError},
		{"slow", func(q string, c net.Conn) { time.Sleep(2 * time.Second) }, 200 * time.Millisecond, "", IdentTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startIdentServer(t, "tcp4", "127.0.0.1:0", tc.answer)
			got, err := identQuery(context.Background(), local, remote, srv.port(), tc.timeout)
			if tc.reason == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
			} else {
				var ie *IdentError
				if !errors.As(err, &ie) || ie.Reason != tc.reason {
					t.Fatalf("got %q, %v; want reason %q", got, err, tc.reason)
				}
				if tc.reason == IdentBadResp && ie.Line == "" {
					t.Error("bad response without the offending line")
				}
			}
			if q := <-srv.queries; q != "42406,11001\r\n" {
				t.Errorf("query %q, want %q", q, "42406,11001\r\n")
			}
			if p := <-srv.peers; p != netip.MustParseAddr("127.0.0.1") {
				t.Errorf("query came from %v, want the connection's local address", p)
			}
		})
	}
}

func TestIdentNoServerAndCancel(t *testing.T) {
	// A port nobody listens on, and that the kernel hands no one meanwhile.
	closedPort := uint16(testnet.Ports(t, 1)[0])
	_, err := identQuery(context.Background(), ap("127.0.0.1:1"), ap("127.0.0.1:2"), closedPort, 10*time.Second)
	var ie *IdentError
	if !errors.As(err, &ie) || ie.Reason != IdentNoServer {
		t.Errorf("closed port: %v, want %q", err, IdentNoServer)
	}

	srv := startIdentServer(t, "tcp4", "127.0.0.1:0", func(string, net.Conn) { time.Sleep(3 * time.Second) })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = identQuery(ctx, ap("127.0.0.1:1"), ap("127.0.0.1:2"), srv.port(), 10*time.Second)
	if !errors.As(err, &ie) || ie.Reason != IdentTimeout || !errors.Is(err, context.Canceled) && !isTimeout(err) {
		t.Errorf("cancelled: %v, want a timeout reason", err)
	}

	if _, err := Ident(context.Background(), ap("127.0.0.1:1"), netip.AddrPort{}, time.Second); !errors.As(err, &ie) || ie.Reason != IdentSysError {
		t.Errorf("unknown client: %v, want %q", err, IdentSysError)
	}
}

func TestIdentIPv6AndMapped(t *testing.T) {
	srv6 := startIdentServer(t, "tcp6", "[::1]:0", func(q string, c net.Conn) {
		fmt.Fprintf(c, "%s:USERID:UNIX:six\r\n", echoPorts(q))
	})
	got, err := identQuery(context.Background(), ap("[::1]:7"), ap("[::1]:9"), srv6.port(), 10*time.Second)
	if err != nil || got != "UNIX:six" {
		t.Errorf("ipv6: %q, %v", got, err)
	}
	// A v4-mapped pair (dual-stack listener) is queried over IPv4.
	srv4 := startIdentServer(t, "tcp4", "127.0.0.1:0", func(q string, c net.Conn) {
		fmt.Fprintf(c, "%s:USERID:UNIX:four\r\n", echoPorts(q))
	})
	got, err = identQuery(context.Background(), ap("[::ffff:127.0.0.1]:7"), ap("[::ffff:127.0.0.1]:9"), srv4.port(), 10*time.Second)
	if err != nil || got != "UNIX:four" {
		t.Errorf("v4-mapped: %q, %v", got, err)
	}
	if q := <-srv4.queries; q != "9,7\r\n" {
		t.Errorf("query %q", q)
	}
}
