package builtins

import (
	"context"
	"io"
	"net/netip"
	"testing"
	"time"
)

func BenchmarkChargenStream(b *testing.B) {
	server, client := tcpPair(b, "tcp4", "127.0.0.1:0")
	done := serve(b, context.Background(), mustStream(b, "chargen"), server, nil, &Env{Limits: Limits{MaxBytes: 1 << 62}})
	buf := make([]byte, streamChunk)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := io.ReadFull(client, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	client.Close()
	_ = wait(b, done, 10*time.Second)
}

func BenchmarkDgramEcho(b *testing.B) {
	f := mustDgram(b, "echo")
	pkt := make([]byte, 512)
	reply := make([]byte, 0, MaxEchoDatagram)
	from := netip.MustParseAddrPort("127.0.0.1:40000")
	env := &Env{}
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out := f(pkt, from, nil, env, reply); len(out) != len(pkt) {
			b.Fatal("short echo")
		}
	}
}

func BenchmarkDgramChargen(b *testing.B) {
	f := mustDgram(b, "chargen")
	reply := make([]byte, 0, 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		f(nil, netip.AddrPort{}, nil, nil, reply)
	}
}

func BenchmarkGuard(b *testing.B) {
	env := &Env{OwnPorts: func(p uint16) bool { return p == 7 }}
	from := netip.MustParseAddrPort("[::ffff:127.0.0.1]:40000")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if ok, _ := Guard(from, env); !ok {
			b.Fatal("refused")
		}
	}
}
