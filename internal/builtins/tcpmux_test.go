package builtins

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// muxFixture is a daemon stand-in: three tcpmux clients and one
// ordinary service that a lookup might wrongly return.
type muxFixture struct {
	mu     sync.Mutex
	served []string
	extra  chan string // what Serve read from the connection
}

var (
	muxPlain = &service.Service{Name: "muxplain", ID: "muxplain", Type: service.TypeUnlisted | service.TypeTCPMux}
	muxPlus  = &service.Service{Name: "MuxPlus", ID: "MuxPlus", Type: service.TypeUnlisted | service.TypeTCPMuxPlus}
	muxOther = &service.Service{Name: "telnet", ID: "telnet"}
)

func (m *muxFixture) env(readTimeout time.Duration) *Env {
	m.extra = make(chan string, 1)
	return &Env{
		Limits: Limits{ReadTimeout: readTimeout},
		TCPMux: func(name string) (*service.Service, bool) {
			for _, s := range []*service.Service{muxPlain, muxPlus, muxOther} {
				if strings.EqualFold(s.Name, name) {
					return s, true
				}
			}
			return nil, false
		},
		TCPMuxNames: func() []string { return []string{"muxplain", "MuxPlus"} },
		Serve: func(ctx context.Context, svc *service.Service, conn net.Conn) error {
			defer conn.Close()
			m.mu.Lock()
			m.served = append(m.served, svc.ID)
			m.mu.Unlock()
			// Outlive the name timeout to prove no deadline was left behind.
			time.Sleep(2 * readTimeout)
			_, _ = io.WriteString(conn, "hello from "+svc.ID+"\r\n")
			buf := make([]byte, 5)
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := io.ReadFull(conn, buf)
			if err != nil {
				m.extra <- "read error: " + err.Error()
				return err
			}
			m.extra <- string(buf[:n])
			return nil
		},
	}
}

func TestTCPMux(t *testing.T) {
	const rt = 100 * time.Millisecond
	tests := []struct {
		name      string
		send      []string // written one after another, 10 ms apart
		want      string   // everything the client receives
		served    string   // service ID Serve got, "" for none
		wantErr   error
		noExtra   bool
		closeSend bool // half-close after sending
	}{
		{name: "plain", send: []string{"muxplain\r\nEXTRA"}, want: "hello from muxplain\r\n", served: "muxplain"},
		{name: "plus sends +Go", send: []string{"muxplus\r\nEXTRA"}, want: "+Go\r\nhello from MuxPlus\r\n", served: "MuxPlus"},
		{name: "case-insensitive", send: []string{"MUXPLAIN\r\nEXTRA"}, want: "hello from muxplain\r\n", served: "muxplain"},
		{name: "LF only", send: []string{"muxplain\nEXTRA"}, want: "hello from muxplain\r\n", served: "muxplain"},
		{name: "name split across writes", send: []string{"mu", "xpl", "ain\r", "\nEX", "TRA"}, want: "hello from muxplain\r\n", served: "muxplain"},
		{name: "blanks around the name", send: []string{"  muxplain \r\nEXTRA"}, want: "hello from muxplain\r\n", served: "muxplain"},
		{name: "not found", send: []string{"nosuch\r\n"}, want: "-Service name not found\r\n", wantErr: ErrNoService, noExtra: true},
		{name: "not a tcpmux client", send: []string{"telnet\r\n"}, want: "-Service name not found\r\n", wantErr: ErrNoService, noExtra: true},
		{name: "empty name", send: []string{"\r\n"}, want: "-Service name not found\r\n", wantErr: ErrNoService, noExtra: true},
		{name: "control bytes", send: []string{"mux\x00plain\r\n"}, want: "-Service name not found\r\n", wantErr: ErrNoService, noExtra: true},
		{name: "help", send: []string{"HELP\r\n"}, want: "muxplain\r\nMuxPlus\r\n", noExtra: true},
		{name: "overlong", send: []string{strings.Repeat("n", 600)}, want: "-Service name too long\r\n", wantErr: ErrBadRequest, noExtra: true},
		{name: "longest allowed name", send: []string{strings.Repeat("n", 510) + "\r\n"}, want: "-Service name not found\r\n", wantErr: ErrNoService, noExtra: true},
		{name: "timeout", send: []string{"muxpl"}, want: "", wantErr: ErrBadRequest, noExtra: true},
		{name: "EOF before a name", send: nil, closeSend: true, want: "", wantErr: ErrBadRequest, noExtra: true},
		{name: "EOF ends the name", send: []string{"muxplain"}, closeSend: true, want: "hello from muxplain\r\n", served: "muxplain", noExtra: true},
	}
	for _, lb := range loopbacks {
		for _, tc := range tests {
			t.Run(lb.network+" "+tc.name, func(t *testing.T) {
				m := &muxFixture{}
				env := m.env(rt)
				server, client := tcpPair(t, lb.network, lb.addr)
				done := serve(t, context.Background(), mustStream(t, "tcpmux"), server, nil, env)
				for i, s := range tc.send {
					if i > 0 {
						time.Sleep(10 * time.Millisecond)
					}
					if _, err := io.WriteString(client, s); err != nil {
						t.Fatal(err)
					}
				}
				if tc.closeSend {
					_ = client.(*net.TCPConn).CloseWrite()
				}
				got := readAll(t, client, 5*time.Second)
				if string(got) != tc.want {
					t.Errorf("client got %q, want %q", got, tc.want)
				}
				if bytes.IndexByte(got, 0) >= 0 {
					t.Error("reply holds a NUL byte")
				}
				err := wait(t, done, 5*time.Second)
				if tc.wantErr == nil && err != nil && !tc.noExtra {
					t.Errorf("tcpmux returned %v", err)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("tcpmux returned %v, want %v", err, tc.wantErr)
				}
				m.mu.Lock()
				served := strings.Join(m.served, ",")
				m.mu.Unlock()
				if served != tc.served {
					t.Errorf("Serve got %q, want %q", served, tc.served)
				}
				if !tc.noExtra {
					if extra := <-m.extra; extra != "EXTRA" {
						t.Errorf("bytes after the name reached Serve as %q, want EXTRA", extra)
					}
				}
			})
		}
	}
}

func TestTCPMuxOverPipe(t *testing.T) {
	m := &muxFixture{}
	env := m.env(100 * time.Millisecond)
	server, client := net.Pipe()
	defer client.Close()
	done := serve(t, context.Background(), mustStream(t, "tcpmux"), server, nil, env)
	go func() { _, _ = io.WriteString(client, "muxplus\r\nEXTRA") }()
	got := readAll(t, client, 5*time.Second)
	if string(got) != "+Go\r\nhello from MuxPlus\r\n" {
		t.Errorf("got %q", got)
	}
	if extra := <-m.extra; extra != "EXTRA" {
		t.Errorf("Serve read %q", extra)
	}
	if err := wait(t, done, 5*time.Second); err != nil {
		t.Errorf("returned %v", err)
	}
}

func TestTCPMuxNoHooks(t *testing.T) {
	server, client := tcpPair(t, "tcp4", "127.0.0.1:0")
	done := serve(t, context.Background(), mustStream(t, "tcpmux"), server, nil, &Env{})
	_, _ = io.WriteString(client, "help\r\n")
	if got := readAll(t, client, 5*time.Second); len(got) != 0 {
		t.Errorf("help without names printed %q", got)
	}
	if err := wait(t, done, 5*time.Second); err != nil {
		t.Errorf("returned %v", err)
	}

	server, client = tcpPair(t, "tcp4", "127.0.0.1:0")
	env := &Env{TCPMux: func(string) (*service.Service, bool) { return muxPlain, true }}
	done = serve(t, context.Background(), mustStream(t, "tcpmux"), server, nil, env)
	_, _ = io.WriteString(client, "muxplain\r\n")
	if got := string(readAll(t, client, 5*time.Second)); got != "-Service not available\r\n" {
		t.Errorf("without Serve got %q", got)
	}
	if err := wait(t, done, 5*time.Second); err == nil {
		t.Error("no error without Serve")
	}
}

func TestTCPMuxCancel(t *testing.T) {
	m := &muxFixture{}
	server, _ := tcpPair(t, "tcp4", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := serve(t, ctx, mustStream(t, "tcpmux"), server, nil, m.env(time.Hour))
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := wait(t, done, 5*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestReadLine(t *testing.T) {
	tests := []struct {
		in, want, rest string
		err            error
	}{
		{"abc\r\nrest", "abc", "rest", nil},
		{"abc\nrest", "abc", "rest", nil},
		{"abc", "abc", "", nil},
		{"a\rb\r\n", "a\rb", "", nil},
		{"", "", "", io.EOF},
		{strings.Repeat("x", 9) + "\n", strings.Repeat("x", 9), "", nil},
		{strings.Repeat("x", 10) + "\n", "", "\n", ErrBadRequest},
	}
	for _, tc := range tests {
		r := strings.NewReader(tc.in)
		got, err := ReadLine(r, 10)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("ReadLine(%q) error %v, want %v", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("ReadLine(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if rest, _ := io.ReadAll(r); string(rest) != tc.rest {
			t.Errorf("ReadLine(%q) left %q, want %q", tc.in, rest, tc.rest)
		}
	}
}

type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

func TestReadLineNoProgress(t *testing.T) {
	if _, err := ReadLine(stuckReader{}, 10); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("got %v, want io.ErrNoProgress", err)
	}
}

func FuzzTCPMuxName(f *testing.F) {
	for _, s := range []string{"muxplain\r\n", "help\r\n", "a\nb", "", "\r\n", " x \r\n", "\x00\r\n", strings.Repeat("z", 600)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		line, err := ReadLine(r, MaxMuxName)
		consumed := len(in) - r.Len()
		if consumed > MaxMuxName {
			t.Fatalf("consumed %d bytes, limit %d", consumed, MaxMuxName)
		}
		if err == nil {
			lf := bytes.IndexByte(in, '\n')
			if lf >= 0 && consumed != lf+1 {
				t.Fatalf("consumed %d bytes, want up to the first LF at %d", consumed, lf)
			}
			if bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("line %q holds LF", line)
			}
			name, ok := ParseMuxName(line)
			if ok {
				if name == "" || strings.Trim(name, " \t") != name {
					t.Fatalf("bad name %q", name)
				}
				for _, c := range []byte(name) {
					if c < 0x20 || c == 0x7f {
						t.Fatalf("name %q holds a control byte", name)
					}
				}
			}
		}
	})
}
