package builtins

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

func TestLookupNames(t *testing.T) {
	for name, types := range service.Builtins {
		for _, st := range types {
			var ok bool
			switch st {
			case service.SockStream:
				_, ok = Stream(name)
			case service.SockDgram:
				_, ok = Dgram(name)
			}
			if !ok {
				t.Errorf("service.Builtins lists %s/%s but builtins has no handler", name, st)
			}
		}
	}
	if _, ok := Stream("ECHO"); !ok {
		t.Error("Stream is not case-insensitive")
	}
	for _, bad := range []string{"servers", "services", "xadmin", ""} {
		if _, ok := Stream(bad); ok {
			t.Errorf("Stream(%q) found", bad)
		}
	}
	for _, streamOnly := range []string{"tcpmux", "auth"} {
		if _, ok := Dgram(streamOnly); ok {
			t.Errorf("Dgram(%q) found", streamOnly)
		}
	}
}

func TestAppendDaytime(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no zoneinfo: %v", err)
	}
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		{"sample from xinetd", time.Date(2026, 11, 23, 0, 32, 12, 0, time.UTC), "23 NOV 2026 00:32:12 UTC\r\n"},
		{"zero padded day", time.Date(2024, 1, 5, 9, 3, 7, 999999999, time.UTC), "05 JAN 2024 09:03:07 UTC\r\n"},
		{"summer time abbreviation", time.Date(2025, 7, 4, 12, 0, 0, 0, ny), "04 JUL 2025 12:00:00 EDT\r\n"},
		{"winter time abbreviation", time.Date(2025, 12, 31, 23, 59, 59, 0, ny), "31 DEC 2025 23:59:59 EST\r\n"},
		{"fixed zone", time.Date(2030, 5, 17, 1, 2, 3, 0, time.FixedZone("CET", 3600)), "17 MAY 2030 01:02:03 CET\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(AppendDaytime(nil, tc.t)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	// Every month is upper case.
	for m := time.January; m <= time.December; m++ {
		got := string(AppendDaytime([]byte("x"), time.Date(2020, m, 1, 0, 0, 0, 0, time.UTC)))
		want := "x01 " + strings.ToUpper(m.String()[:3]) + " 2020 00:00:00 UTC\r\n"
		if got != want {
			t.Errorf("%v: got %q, want %q", m, got, want)
		}
	}
}

func TestAppendTime(t *testing.T) {
	tests := []struct {
		t    time.Time
		want []byte
	}{
		{time.Unix(0, 0), []byte{0x83, 0xaa, 0x7e, 0x80}},
		{time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), []byte{0xbc, 0x17, 0xc2, 0x00}},
		{time.Date(2026, 11, 23, 0, 32, 12, 0, time.UTC), []byte{0xee, 0xae, 0x08, 0x0c}},
		{time.Date(2036, 2, 7, 6, 28, 15, 0, time.UTC), []byte{0xff, 0xff, 0xff, 0xff}},
		{time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC), []byte{0, 0, 0, 0}}, // truncated to 32 bits
	}
	for _, tc := range tests {
		if got := AppendTime(nil, tc.t); !bytes.Equal(got, tc.want) {
			t.Errorf("%v: got % x, want % x", tc.t, got, tc.want)
		}
	}
}

// refChargenLine is the chargen line as xinetd.md §9.1 describes it,
// built without any of the package's tables.
func refChargenLine(k int) string {
	var set []byte
	for c := byte('!'); c <= '}'; c++ {
		set = append(set, c)
	}
	var b strings.Builder
	for j := 0; j < 72; j++ {
		b.WriteByte(set[(k%95+j)%len(set)])
	}
	return b.String() + "\r\n"
}

func refChargen(from, lines int) string {
	var b strings.Builder
	for k := from; k < from+lines; k++ {
		b.WriteString(refChargenLine(k))
	}
	return b.String()
}

func TestChargenLines(t *testing.T) {
	// The first two lines of RFC 864's example.
	rfc := []string{
		"!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh\r\n",
		"\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghi\r\n",
	}
	for k, want := range rfc {
		if got := string(AppendChargenLine(nil, k)); got != want {
			t.Errorf("line %d: got %q, want %q", k, got, want)
		}
	}
	for k := 0; k < 400; k++ {
		got := string(AppendChargenLine(nil, k))
		if got != refChargenLine(k) {
			t.Fatalf("line %d: got %q, want %q", k, got, refChargenLine(k))
		}
		if len(got) != 74 || strings.ContainsAny(got[:72], " ~\r\n") {
			t.Fatalf("line %d malformed: %q", k, got)
		}
		if got != string(AppendChargenLine(nil, k+95)) {
			t.Fatalf("line %d differs from line %d: the period is not 95", k, k+95)
		}
	}
	// The ring the stream writes from is the same text.
	if want := refChargen(0, len(chargenRing())/74); string(chargenRing()[:len(want)]) != want {
		t.Error("chargenRing does not match the reference generator")
	}
}

func TestChargenDgram(t *testing.T) {
	f := mustDgram(t, "chargen")
	start := int(chargenLine.Load() % 95)
	reply := make([]byte, 0, 2048)
	for i := 0; i < 20; i++ {
		k := start + 14*i
		got := f([]byte("x"), netip.MustParseAddrPort("127.0.0.1:40000"), nil, &Env{}, reply)
		if len(got) != 1024 {
			t.Fatalf("reply %d: %d bytes, want 1024", i, len(got))
		}
		want := refChargen(k, 13) + refChargenLine(k + 13)[:60] + "\r\n"
		if string(got) != want {
			t.Fatalf("reply %d (line %d): got\n%q\nwant\n%q", i, k, got, want)
		}
	}
}

func TestChargenDgramConcurrent(t *testing.T) {
	f := mustDgram(t, "chargen")
	before := chargenLine.Load()
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 1024)
			for i := 0; i < each; i++ {
				if got := f(nil, netip.AddrPort{}, nil, nil, buf); len(got) != 1024 {
					t.Errorf("reply of %d bytes", len(got))
					return
				}
			}
		}()
	}
	wg.Wait()
	if moved := chargenLine.Load() - before; moved != workers*each*14 {
		t.Errorf("rotation moved %d lines, want %d", moved, workers*each*14)
	}
}

func TestDgramReplies(t *testing.T) {
	now := time.Date(2026, 11, 23, 0, 32, 12, 0, time.UTC)
	env := &Env{Now: func() time.Time { return now }}
	from := netip.MustParseAddrPort("127.0.0.1:40000")
	big := bytes.Repeat([]byte("z"), 70000)
	tests := []struct {
		name string
		pkt  []byte
		want []byte // nil: nothing sent
	}{
		{"echo", []byte("hello"), []byte("hello")},
		{"echo", []byte{}, []byte{}},
		{"echo", big, big[:MaxEchoDatagram]},
		{"discard", []byte("hello"), nil},
		{"sensor", []byte("hello"), nil},
		{"daytime", []byte("ignored"), []byte("23 NOV 2026 00:32:12 UTC\r\n")},
		{"time", []byte("ignored"), []byte{0xee, 0xae, 0x08, 0x0c}},
	}
	for _, tc := range tests {
		got := mustDgram(t, tc.name)(tc.pkt, from, nil, env, make([]byte, 10))
		if (got == nil) != (tc.want == nil) || !bytes.Equal(got, tc.want) {
			t.Errorf("%s(%d bytes): got %d bytes %q, want %d bytes", tc.name, len(tc.pkt), len(got), truncate(got), len(tc.want))
		}
	}
}

func truncate(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

func TestDgramZeroAlloc(t *testing.T) {
	env := &Env{Now: func() time.Time { return time.Unix(1e9, 0).UTC() }}
	reply := make([]byte, 0, MaxEchoDatagram)
	pkt := bytes.Repeat([]byte("a"), 1400)
	from := netip.MustParseAddrPort("[::1]:40000")
	for _, name := range []string{"echo", "discard", "daytime", "time", "chargen", "sensor"} {
		f := mustDgram(t, name)
		if n := testing.AllocsPerRun(100, func() { f(pkt, from, nil, env, reply) }); n != 0 {
			t.Errorf("%s allocates %v times per datagram", name, n)
		}
	}
}

// TestDgramOverUDP runs the datagram builtins behind a minimal server
// loop like the daemon's, on real loopback sockets.
func TestDgramOverUDP(t *testing.T) {
	now := time.Date(2026, 11, 23, 0, 32, 12, 0, time.UTC)
	for _, lb := range []string{"127.0.0.1:0", "[::1]:0"} {
		for _, name := range []string{"echo", "daytime", "time", "chargen", "discard"} {
			t.Run(name+" "+lb, func(t *testing.T) {
				pc, err := net.ListenPacket("udp", lb)
				if err != nil {
					t.Skipf("listen %s: %v", lb, err)
				}
				defer pc.Close()
				env := &Env{Now: func() time.Time { return now }}
				f := mustDgram(t, name)
				go func() {
					buf := make([]byte, 65536)
					reply := make([]byte, 0, 65536)
					for i := 0; i < 10; i++ {
						n, addr, err := pc.ReadFrom(buf)
						if err != nil {
							return
						}
						ap := addr.(*net.UDPAddr).AddrPort()
						if ok, _ := Guard(ap, env); !ok {
							continue
						}
						if out := f(buf[:n], ap, nil, env, reply); out != nil {
							_, _ = pc.WriteTo(out, addr)
						}
					}
				}()
				c, err := net.Dial("udp", pc.LocalAddr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.Write([]byte("ping")); err != nil {
					t.Fatal(err)
				}
				_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				buf := make([]byte, 4096)
				n, err := c.Read(buf)
				switch name {
				case "discard":
					if err == nil {
						t.Fatalf("discard answered %q", buf[:n])
					}
					return
				case "echo":
					if string(buf[:n]) != "ping" {
						t.Errorf("echo: %q", buf[:n])
					}
				case "daytime":
					if string(buf[:n]) != "23 NOV 2026 00:32:12 UTC\r\n" {
						t.Errorf("daytime: %q", buf[:n])
					}
				case "time":
					if !bytes.Equal(buf[:n], []byte{0xee, 0xae, 0x08, 0x0c}) {
						t.Errorf("time: % x", buf[:n])
					}
				case "chargen":
					if n != 1024 || !strings.HasSuffix(string(buf[:n]), "\r\n") {
						t.Errorf("chargen: %d bytes", n)
					}
				}
				if err != nil {
					t.Fatalf("%s: no reply: %v", name, err)
				}
			})
		}
	}
}

func TestEchoStream(t *testing.T) {
	for _, lb := range loopbacks {
		t.Run(lb.network, func(t *testing.T) {
			server, client := tcpPair(t, lb.network, lb.addr)
			done := serve(t, context.Background(), mustStream(t, "echo"), server, nil, &Env{})
			data := make([]byte, 200<<10)
			_, _ = rand.Read(data)
			go func() {
				_, _ = client.Write(data)
				_ = client.(*net.TCPConn).CloseWrite()
			}()
			got := readAll(t, client, 5*time.Second)
			if !bytes.Equal(got, data) {
				t.Fatalf("echoed %d bytes, want %d identical", len(got), len(data))
			}
			if err := wait(t, done, 5*time.Second); err != nil {
				t.Fatalf("echo returned %v after EOF", err)
			}
		})
	}
}

func TestEchoOverPipe(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	done := serve(t, context.Background(), mustStream(t, "echo"), server, nil, &Env{})
	for _, msg := range []string{"one", "two\r\n", strings.Repeat("x", 5000)} {
		if _, err := client.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(client, got); err != nil || string(got) != msg {
			t.Fatalf("echo %q: got %q, %v", truncate([]byte(msg)), truncate(got), err)
		}
	}
	client.Close()
	if err := wait(t, done, 5*time.Second); err != nil {
		t.Fatalf("echo returned %v", err)
	}
}

func TestDiscardStream(t *testing.T) {
	server, client := tcpPair(t, "tcp4", "127.0.0.1:0")
	done := serve(t, context.Background(), mustStream(t, "discard"), server, nil, &Env{})
	if _, err := client.Write(bytes.Repeat([]byte("d"), 100<<10)); err != nil {
		t.Fatal(err)
	}
	_ = client.(*net.TCPConn).CloseWrite()
	if got := readAll(t, client, 5*time.Second); len(got) != 0 {
		t.Errorf("discard sent %q", truncate(got))
	}
	if err := wait(t, done, 5*time.Second); err != nil {
		t.Fatalf("discard returned %v", err)
	}
}

func TestShortStreams(t *testing.T) {
	now := time.Date(2026, 11, 23, 0, 32, 12, 0, time.UTC)
	env := &Env{Now: func() time.Time { return now }}
	tests := []struct {
		name string
		want string
	}{
		{"daytime", "23 NOV 2026 00:32:12 UTC\r\n"},
		{"time", "\xee\xae\x08\x0c"},
		{"sensor", ""},
	}
	for _, lb := range loopbacks {
		for _, tc := range tests {
			t.Run(tc.name+" "+lb.network, func(t *testing.T) {
				server, client := tcpPair(t, lb.network, lb.addr)
				done := serve(t, context.Background(), mustStream(t, tc.name), server, nil, env)
				if got := string(readAll(t, client, 5*time.Second)); got != tc.want {
					t.Errorf("got %q, want %q", got, tc.want)
				}
				if err := wait(t, done, 5*time.Second); err != nil {
					t.Errorf("returned %v", err)
				}
			})
		}
	}
}

func TestChargenStream(t *testing.T) {
	for _, lb := range loopbacks {
		t.Run(lb.network, func(t *testing.T) {
			start := int(chargenLine.Load() % 95)
			server, client := tcpPair(t, lb.network, lb.addr)
			done := serve(t, context.Background(), mustStream(t, "chargen"), server, nil, &Env{})
			const lines = 300
			got := make([]byte, lines*74)
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(client, got); err != nil {
				t.Fatal(err)
			}
			if want := refChargen(start, lines); string(got) != want {
				t.Fatalf("chargen from line %d differs from the reference", start)
			}
			if chargenLine.Load()%95 != uint64(start) {
				t.Error("stream chargen moved the shared rotation")
			}
			client.Close()
			if err := wait(t, done, 5*time.Second); err != nil {
				t.Fatalf("chargen returned %v after the client left", err)
			}
		})
	}
}

func TestStreamBounds(t *testing.T) {
	t.Run("echo idle timeout", func(t *testing.T) {
		server, client := tcpPair(t, "tcp4", "127.0.0.1:0")
		begin := time.Now()
		done := serve(t, context.Background(), mustStream(t, "echo"), server, nil,
			&Env{Limits: Limits{IdleTimeout: 100 * time.Millisecond}})
		err := wait(t, done, 5*time.Second)
		if !errors.Is(err, ErrIdleTimeout) {
			t.Fatalf("got %v, want ErrIdleTimeout", err)
		}
		if el := time.Since(begin); el < 100*time.Millisecond {
			t.Errorf("returned after %v, before the idle timeout", el)
		}
		if got := readAll(t, client, 2*time.Second); len(got) != 0 {
			t.Errorf("got %q", got)
		}
	})
	t.Run("idle deadline refreshed on progress", func(t *testing.T) {
		server, client := tcpPair(t, "tcp4", "127.0.0.1:0")
		done := serve(t, context.Background(), mustStream(t, "echo"), server, nil,
			&Env{Limits: Limits{IdleTimeout: 1500 * time.Millisecond}})
		buf := make([]byte, 1)
		// Five exchanges 400 ms apart last longer than one timeout; each
		// pause leaves more than a second to spare.
		for i := 0; i < 5; i++ {
			time.Sleep(400 * time.Millisecond)
			if _, err := client.Write([]byte{'a'}); err != nil {
				t.Fatal(err)
			}
			_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.ReadFull(client, buf); err != nil {
				t.Fatalf("exchange %d: %v", i, err)
			}
		}
		client.Close()
		if err := wait(t, done, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("service idle_timeout wins", func(t *testing.T) {
		server, _ := tcpPair(t, "tcp4", "127.0.0.1:0")
		done := serve(t, context.Background(), mustStream(t, "discard"), server,
			&service.Service{IdleTimeout: 1}, &Env{Limits: Limits{IdleTimeout: time.Hour}})
		if err := wait(t, done, 5*time.Second); !errors.Is(err, ErrIdleTimeout) {
			t.Fatalf("got %v, want ErrIdleTimeout", err)
		}
	})
	t.Run("echo byte limit", func(t *testing.T) {
		server, client := tcpPair(t, "tcp4", "127.0.0.1:0")
		done := serve(t, context.Background(), mustStream(t, "echo"), server, nil,
			&Env{Limits: Limits{MaxBytes: 1000}})
		go func() { _, _ = client.Write(bytes.Repeat([]byte("e"), 5000)) }()
		got := readAll(t, client, 5*time.Second)
		if len(got) != 1000 {
			t.Errorf("echoed %d bytes, want 1000", len(got))
		}
		if err := wait(t, done, 5*time.Second); !errors.Is(err, ErrByteLimit) {
			t.Fatalf("got %v, want ErrByteLimit", err)
		}
	})
	t.Run("chargen byte limit", func(t *testing.T) {
		server, client := tcpPair(t, "tcp4", "127.0.0.1:0")
		done := serve(t, context.Background(), mustStream(t, "chargen"), server,
			&service.Service{MaxBytes: 100000}, &Env{})
		if got := readAll(t, client, 5*time.Second); len(got) != 100000 {
			t.Errorf("chargen sent %d bytes, want 100000", len(got))
		}
		if err := wait(t, done, 5*time.Second); !errors.Is(err, ErrByteLimit) {
			t.Fatalf("got %v, want ErrByteLimit", err)
		}
	})
	t.Run("discard byte limit", func(t *testing.T) {
		server, client := tcpPair(t, "tcp4", "127.0.0.1:0")
		done := serve(t, context.Background(), mustStream(t, "discard"), server, nil,
			&Env{Limits: Limits{MaxBytes: 4096}})
		go func() { _, _ = client.Write(bytes.Repeat([]byte("d"), 1<<20)) }()
		if err := wait(t, done, 5*time.Second); !errors.Is(err, ErrByteLimit) {
			t.Fatalf("got %v, want ErrByteLimit", err)
		}
	})
	t.Run("chargen stalled client", func(t *testing.T) {
		server, _ := tcpPair(t, "tcp4", "127.0.0.1:0")
		done := serve(t, context.Background(), mustStream(t, "chargen"), server, nil,
			&Env{Limits: Limits{IdleTimeout: 200 * time.Millisecond}})
		if err := wait(t, done, 10*time.Second); !errors.Is(err, ErrIdleTimeout) {
			t.Fatalf("got %v, want ErrIdleTimeout", err)
		}
	})
	for _, name := range []string{"echo", "discard", "chargen"} {
		t.Run(name+" ctx cancel", func(t *testing.T) {
			server, _ := tcpPair(t, "tcp4", "127.0.0.1:0")
			ctx, cancel := context.WithCancel(context.Background())
			done := serve(t, ctx, mustStream(t, name), server, nil, &Env{})
			time.Sleep(50 * time.Millisecond)
			cancel()
			if err := wait(t, done, 5*time.Second); !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
		})
	}
	t.Run("daytime already cancelled", func(t *testing.T) {
		server, _ := tcpPair(t, "tcp4", "127.0.0.1:0")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := serve(t, ctx, mustStream(t, "daytime"), server, nil, &Env{})
		if err := wait(t, done, 5*time.Second); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
}
