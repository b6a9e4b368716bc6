// Command serving2srv is a tiny server for the e2e tests, started by
// gxinetd with its socket on fds 0-2. Its first argument picks a mode:
//
//	acceptone TEXT      fd 0 is a listening stream socket (wait = yes):
//	                    accept one connection, write TEXT and the client's
//	                    address, close, exit
//	udpone PREFIX MS    fd 0 is a datagram socket (wait = yes): read one
//	                    datagram, wait MS milliseconds, answer PREFIX+data
//	                    to its sender, exit
//	args                write argv, one per line, then exit
//	sockopts            fd 0 is a connection: write its SO_KEEPALIVE,
//	                    TCP_NODELAY and O_NONBLOCK state, then exit
//
// It is built by the tests (it lives under testdata so `go test ./...`
// leaves it alone).
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail()
	}
	switch os.Args[1] {
	case "acceptone":
		text := "hi"
		if len(os.Args) > 2 {
			text = os.Args[2]
		}
		nfd, sa, err := syscall.Accept(0)
		if err != nil {
			fail()
		}
		fmt.Fprintf(os.NewFile(uintptr(nfd), "conn"), "%s from %s\n", text, sockaddrText(sa))
		syscall.Close(nfd)
	case "udpone":
		prefix, ms := "got:", 0
		if len(os.Args) > 2 {
			prefix = os.Args[2]
		}
		if len(os.Args) > 3 {
			ms, _ = strconv.Atoi(os.Args[3])
		}
		buf := make([]byte, 2048)
		n, from, err := syscall.Recvfrom(0, buf, 0)
		if err != nil {
			fail()
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		if err := syscall.Sendto(0, append([]byte(prefix), buf[:n]...), 0, from); err != nil {
			fail()
		}
	case "args":
		fmt.Print(strings.Join(os.Args, "\n") + "\n")
	case "sockopts":
		ka, _ := syscall.GetsockoptInt(0, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		nd, _ := syscall.GetsockoptInt(0, syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
		fl, _, _ := syscall.Syscall(syscall.SYS_FCNTL, 0, syscall.F_GETFL, 0)
		fmt.Printf("keepalive=%d nodelay=%d nonblock=%d\n", ka, nd, btoi(fl&syscall.O_NONBLOCK != 0))
	default:
		fail()
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sockaddrText(sa syscall.Sockaddr) string {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return fmt.Sprintf("%d.%d.%d.%d", a.Addr[0], a.Addr[1], a.Addr[2], a.Addr[3])
	case *syscall.SockaddrInet6:
		return fmt.Sprintf("%x", a.Addr)
	}
	return "?"
}

// fail exits with status 2 and no message: stderr is the socket, so a
// message would reach the client; the EXIT record shows the status.
func fail() { os.Exit(2) }
