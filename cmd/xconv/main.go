package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gxinetd/gxinetd/internal/sysdb"
	"github.com/gxinetd/gxinetd/parser/inetd"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// Exit statuses.
const (
	exitOK     = 0
	exitLossy  = 1
	exitFailed = 2
)

const usage = `Usage: xconv [-dialect D] [-hosts-allow FILE] [-hosts-deny FILE] [-keep-disabled] [-daemon-dir DIR] [-d DIR] [FILE]`

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xconv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	var c converter
	fs.StringVar(&c.dialect, "dialect", "", "inetd.conf dialect: "+strings.Join(inetd.Dialects, ", ")+"; recognised from the file when not given")
	fs.StringVar(&c.allowFile, "hosts-allow", "", "tcp_wrappers `FILE` whose rules become only_from/no_access for tcpd-wrapped services")
	fs.StringVar(&c.denyFile, "hosts-deny", "", "tcp_wrappers `FILE` read after -hosts-allow")
	fs.BoolVar(&c.keepDisabled, "keep-disabled", false, "convert commented-out entries into services with disable = yes")
	fs.StringVar(&c.daemonDir, "daemon-dir", "/usr/sbin", "`DIR` where tcpd finds servers named without a path")
	outDir := fs.String("d", "", "write one drop-in file per service into `DIR` (an xinetd.d directory) instead of standard output")
	root := fs.String("root", "", "read services, protocols, rpc, passwd and group from `DIR`/etc instead of /etc")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitFailed
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, usage)
		return exitFailed
	}
	c.sys = sysdb.System
	if *root != "" {
		c.sys = &sysdb.DB{Root: *root}
	}
	c.stderr = stderr
	var data []byte
	var err error
	if fs.NArg() == 1 {
		c.file = fs.Arg(0)
		data, err = os.ReadFile(c.file)
	} else {
		c.file = "stdin"
		data, err = io.ReadAll(io.LimitReader(stdin, 64<<20))
	}
	if err != nil {
		fmt.Fprintf(stderr, "xconv: %v\n", err)
		return exitFailed
	}
	for _, hf := range []struct {
		path  string
		allow bool
	}{{c.allowFile, true}, {c.denyFile, false}} {
		if hf.path == "" {
			continue
		}
		rules, err := readHosts(hf.path, hf.allow)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFailed
		}
		c.rules = append(c.rules, rules...)
		c.haveHosts = true
	}
	out, ok := c.convert(data)
	if !ok {
		return exitFailed
	}
	if *outDir != "" {
		if err := writeDir(*outDir, out); err != nil {
			fmt.Fprintln(stderr, err)
			return exitFailed
		}
	} else if _, err := io.WriteString(stdout, out.single()); err != nil {
		fmt.Fprintf(stderr, "xconv: write: %v\n", err)
		return exitFailed
	}
	if c.lossy {
		return exitLossy
	}
	return exitOK
}

// writeDir writes each block into its own file. Existing files are never
// overwritten: nothing is written if one is in the way.
func writeDir(dir string, out *output) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("xconv: %w", err)
	}
	files := out.files()
	for _, f := range files {
		if _, err := os.Lstat(filepath.Join(dir, f.name)); err == nil {
			return fmt.Errorf("xconv: %s already exists: not overwriting anything", filepath.Join(dir, f.name))
		}
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.text), 0o644); err != nil {
			return fmt.Errorf("xconv: %w", err)
		}
	}
	return nil
}
