// Command echobackend is the backend of the idle-session benchmark
// (e2e/sessions_bench_test.go), in a process of its own so that its
// descriptors do not count against the test's. It listens on the address
// given, prints "ready" once it does, echoes every line of every
// connection (after a PROXY v1 header, which it skips, with -pp) and
// holds the connections until stdin closes.
//
// It is built by the benchmark (it lives under testdata so `go test
// ./...` leaves it alone).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	pp := flag.Bool("pp", false, "skip a PROXY v1 header first")
	flag.Parse()
	if !strings.HasPrefix(*addr, "127.") {
		fmt.Fprintln(os.Stderr, "echobackend: loopback only")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready", ln.Addr().(*net.TCPAddr).Port)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			r := bufio.NewReader(c)
			if *pp {
				if _, err := r.ReadString('\n'); err != nil {
					return
				}
			}
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				io.WriteString(c, line)
			}
		}(c)
	}
}
