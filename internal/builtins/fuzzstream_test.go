package builtins

import (
	"bytes"
	"context"
	"errors"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// scriptConn is a connection whose client has sent in and then shut
// down its side: reads drain in and then see EOF, writes are kept. It
// never blocks, so the whole request path of a builtin can be fuzzed.
type scriptConn struct {
	in     *bytes.Reader
	out    bytes.Buffer
	closed bool
}

func newScriptConn(in []byte) *scriptConn { return &scriptConn{in: bytes.NewReader(in)} }

func (c *scriptConn) Read(p []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.in.Read(p)
}

func (c *scriptConn) Write(p []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.out.Write(p)
}

func (c *scriptConn) Close() error        { c.closed = true; return nil }
func (c *scriptConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 113} }
func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
}
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzTCPMuxStream runs the whole tcpmux exchange on arbitrary client
// bytes: the answer is one of tcpmux's replies, only the one multiplexed
// name reaches a service, and nothing after the name line is consumed.
func FuzzTCPMuxStream(f *testing.F) {
	for _, s := range []string{"svc\r\nrest", "SVC\n", " svc \r\n", "help\r\n", "nosuch\r\n", "\x00svc\r\n", "",
		"svc", strings.Repeat("a", 600) + "\r\n", "\r\n", "svc\rx\r\n"} {
		f.Add([]byte(s))
	}
	target := &service.Service{Name: "svc", ID: "svc", Type: service.TypeTCPMuxPlus | service.TypeUnlisted}
	f.Fuzz(func(t *testing.T, in []byte) {
		c := newScriptConn(in)
		served := false
		env := &Env{
			TCPMux: func(name string) (*service.Service, bool) {
				if strings.EqualFold(name, "svc") {
					return target, true
				}
				return nil, false
			},
			TCPMuxNames: func() []string { return []string{"svc"} },
			Serve: func(_ context.Context, svc *service.Service, conn net.Conn) error {
				served = true
				if svc != target || conn != net.Conn(c) {
					t.Fatalf("Serve got %v", svc)
				}
				return nil
			},
		}
		err := tcpmuxStream(context.Background(), c, nil, env)
		out := c.out.String()
		switch out {
		case "", muxNotFound, muxTooLong, "svc\r\n", muxGo:
		default:
			t.Fatalf("reply %q to %q", out, in)
		}
		line, _, hasLF := bytes.Cut(in, []byte("\n"))
		name, _ := ParseMuxName(bytes.TrimSuffix(line, []byte("\r")))
		want := len(line)+1 <= MaxMuxName && strings.EqualFold(name, "svc") && (hasLF || len(line) > 0)
		if served != want {
			t.Fatalf("served %v for %q (err %v)", served, in, err)
		}
		if served {
			if out != muxGo {
				t.Fatalf("served without +Go: %q", out)
			}
			rest := len(in) - len(line)
			if hasLF {
				rest--
			}
			if c.in.Len() != rest {
				t.Fatalf("%d bytes left for the server, want %d", c.in.Len(), rest)
			}
		} else if err == nil && out != "svc\r\n" {
			t.Fatalf("refusal without an error: %q", in)
		}
	})
}

var authReplyRE = regexp.MustCompile(`^\d{1,5} , \d{1,5} : (USERID : UNIX : [!-~]{1,32}|ERROR : (INVALID-PORT|NO-USER|HIDDEN-USER|UNKNOWN-ERROR))\r\n$`)

// FuzzAuthStream runs the whole auth exchange on arbitrary client bytes
// with each kind of option: the answer is always one well-formed RFC 1413
// line, and the query is read no further than its bound.
func FuzzAuthStream(f *testing.F) {
	for _, s := range []string{"113 , 40000\r\n", "1,1\n", "0 , 0\r\n", "70000 , 1\r\n", "a , b\r\n", "\x00\x00\r\n",
		"1 , 1", "", strings.Repeat("9", 2000), " 22 ,\t33 \r\n"} {
		f.Add([]byte(s), uint8(0))
	}
	argSets := [][]string{nil, {"-r"}, {"-d", "guest"}, {"-g"}, {"-r", "-i"}}
	f.Fuzz(func(t *testing.T, in []byte, which uint8) {
		c := newScriptConn(in)
		svc := &service.Service{Name: "auth", ServerArgs: argSets[int(which)%len(argSets)]}
		env := &Env{ProcNet: t.TempDir()} // nothing to find: the answer never depends on the host
		err := authStream(context.Background(), c, svc, env)
		out := c.out.String()
		if !authReplyRE.MatchString(out) {
			t.Fatalf("reply %q to %q (args %v, err %v)", out, in, svc.ServerArgs, err)
		}
		if used := len(in) - c.in.Len(); used > MaxAuthQuery {
			t.Fatalf("read %d bytes of the query, bound %d", used, MaxAuthQuery)
		}
		if err != nil && !errors.Is(err, ErrBadRequest) && !strings.Contains(err.Error(), "auth") {
			t.Fatalf("error %v", err)
		}
	})
}
