// Command challenge is the example CTF challenge of examples/ctf: the
// program gxinetd serves, once per connection, inside the jail the
// Makefile builds (see docs/sandbox.md). It stands for the vulnerable
// binary a real challenge would be; "sandbox" shows the player what the
// program itself sees of the machine.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

func main() {
	in := bufio.NewReader(os.Stdin)
	fmt.Print("gxinetd CTF. Say the magic word (or \"sandbox\"): ")
	line, _ := in.ReadString('\n')
	switch strings.TrimSpace(line) {
	case "please":
		flag, err := os.ReadFile("/flag.txt")
		if err != nil {
			fmt.Println("no flag here:", err)
			return
		}
		fmt.Print(string(flag))
	case "sandbox":
		view()
	default:
		fmt.Println("No.")
	}
}

// view prints what the challenge sees: its pid (2, under the reaper), its
// root (the jail), its filter and whether it can write where it stands.
func view() {
	fmt.Println("pid:", os.Getpid())
	var names []string
	if ents, err := os.ReadDir("/"); err == nil {
		for _, e := range ents {
			names = append(names, e.Name())
		}
	}
	fmt.Println("root:", strings.Join(names, " "))
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "NoNewPrivs:") || strings.HasPrefix(l, "Seccomp:") {
				fmt.Println(strings.Join(strings.Fields(l), " "))
			}
		}
	}
	if err := os.WriteFile("/flag.txt", []byte("mine now"), 0o644); err != nil {
		fmt.Println("overwrite the flag:", err)
	}
	if err := os.WriteFile("/tmp/scratch", []byte("x"), 0o644); err == nil {
		fmt.Println("/tmp: writable, and gone when the connection ends")
	}
}
