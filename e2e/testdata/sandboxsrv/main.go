// Command sandboxsrv is the server of the sandbox end-to-end tests: it
// reports, on its standard output (the connection), its own view of the
// system, one "key=value" line each, and then does what its first
// argument asks. It is built without cgo, so it runs alone in a chroot.
package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

func main() {
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	out := os.Stdout
	say := func(k, v string) { fmt.Fprintf(out, "%s=%s\n", k, v) }
	say("pid", fmt.Sprint(os.Getpid()))
	say("uid", fmt.Sprint(os.Getuid()))
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && (k == "NoNewPrivs" || k == "Seccomp") {
				say(k, strings.TrimSpace(v))
			}
		}
	} else {
		say("proc", "none")
	}
	if ns, err := os.Readlink("/proc/self/ns/pid"); err == nil {
		say("pidns", ns)
	}
	if name, ok := pid1Name(); ok {
		say("pid1", name)
	}
	var root []string
	if ents, err := os.ReadDir("/"); err == nil {
		for _, e := range ents {
			root = append(root, e.Name())
		}
	}
	say("root", strings.Join(root, ","))
	say("write_tmp", result(os.WriteFile("/tmp/sandboxsrv", []byte("x"), 0o644)))
	var tmp []string
	if ents, err := os.ReadDir("/tmp"); err == nil {
		for _, e := range ents {
			tmp = append(tmp, e.Name())
		}
	}
	say("tmp", strings.Join(tmp, ","))
	say("write_ro", result(os.WriteFile("/ro/probe", []byte("x"), 0o644)))
	say("write_rw", result(os.WriteFile("/rw/probe", []byte("x"), 0o644)))
	var ifs []string
	if list, err := net.Interfaces(); err == nil {
		for _, i := range list {
			ifs = append(ifs, i.Name)
		}
	}
	say("interfaces", strings.Join(ifs, ","))
	if addr := os.Getenv("SANDBOX_DIAL"); addr != "" {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.Close()
		}
		say("dial", result(err))
	}
	host, _ := os.Hostname()
	say("hostname", host)
	switch mode {
	case "forbidden":
		say("calling", "ptrace")
		// PTRACE_TRACEME: harmless, and denied by the default profile.
		syscall.RawSyscall(syscall.SYS_PTRACE, syscall.PTRACE_TRACEME, 0, 0)
		say("survived", "ptrace")
	case "sleep":
		time.Sleep(100 * time.Second)
	}
}

func result(err error) string {
	if err == nil {
		return "ok"
	}
	if pe, ok := err.(*os.PathError); ok {
		err = pe.Err
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

// pid1Name is the name of PID 1. In a pid namespace of its own (the
// server is PID 2 there) the init execs the reaper only after this
// server's execve, so it is read until it is the reaper's (for at most
// 10 s).
func pid1Name() (string, bool) {
	deadline := time.Now()
	if os.Getpid() == 2 {
		deadline = deadline.Add(10 * time.Second)
	}
	for {
		b, err := os.ReadFile("/proc/1/comm")
		if err != nil {
			return "", false
		}
		name := strings.TrimSpace(string(b))
		if name == "gxinetd-reaper" || time.Now().After(deadline) {
			return name, true
		}
		time.Sleep(10 * time.Millisecond)
	}
}
