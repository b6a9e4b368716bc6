package tcpwrap

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Action is what the deciding rule asks the daemon to do besides allowing
// or refusing: log at Severity ("[facility.]level", "" = default), send
// BannerFile (the rule's `banners` directory Banners joined with the
// daemon name; "" = none) with Expand applied and CRLF line ends, run
// Spawn in the background with stdio on /dev/null, or run Twist instead
// of the server with stdio on the client. Spawn and Twist are already
// %-expanded and meant for /bin/sh -c.
type Action struct {
	Severity   string
	Banners    string
	BannerFile string
	Spawn      string
	Twist      string
	// Rule is the deciding rule's file:line, for log messages.
	Rule string
	// Proc holds the process options (nice, umask, user, setenv) for the
	// server the rule allows, or the twist command that replaces it;
	// SpawnProc those in force where the spawn option stands, since
	// tcp_wrappers carries options out in order. nil when none.
	Proc, SpawnProc *ProcOptions

	env env
}

// ProcOptions are hosts_options(5)'s process options. The daemon
// applies them to the process it starts, as tcpd applies them to itself
// before it runs the server.
type ProcOptions struct {
	// Nice is added to the process's niceness (nice(2)); `nice` alone is 10.
	Nice *int
	// Umask replaces the process's umask.
	Umask *int
	// User and Group name the identity to run as (`user name[.group]`);
	// without a group, the user's primary group. "" leaves it unchanged.
	User, Group string
	// Env holds `setenv` assignments, NAME=VALUE, %-expanded.
	Env []string
}

func (p *ProcOptions) clone() *ProcOptions {
	if p == nil {
		return nil
	}
	c := *p
	c.Env = append([]string(nil), p.Env...)
	return &c
}

// Expand applies the %-expansions of this connection to s, as the daemon
// must do for the contents of a banners file.
func (a *Action) Expand(s string) string { return expand(s, &a.env) }

// Banner turns the contents of a banners file into what the client is
// sent, as tcp_wrappers does: every complete line ends in CRLF (a line
// that already has one keeps just one) and is %-expanded.
func (a *Action) Banner(text string) string {
	var b strings.Builder
	for text != "" {
		line, rest, nl := strings.Cut(text, "\n")
		if nl {
			line = strings.TrimSuffix(line, "\r") + "\r\n"
		}
		b.WriteString(expand(line, &a.env))
		text = rest
	}
	return b.String()
}

// env holds the connection facts the %-expansions draw on.
type env struct {
	daemon     string
	client     string // address text
	clientName string
	nameState  NameState
	clientPort uint16
	server     string
	serverPort uint16
	user       string
}

// Action builds the rule's Action for this connection; it returns nil
// when the rule has no option the daemon has to carry out.
func (r *Rule) Action(daemon string, c Client) *Action {
	if r == nil || r.Broken != nil {
		return nil
	}
	var a *Action
	get := func() *Action {
		if a == nil {
			m := newMatcher(&c)
			name, st := m.hostName()
			a = &Action{Rule: r.Where(), env: env{
				daemon: daemon, client: m.text(), clientName: name, nameState: st,
				clientPort: c.Port, serverPort: c.LocalPort, user: c.User,
			}}
			if l := c.Local.Unmap().WithZone(""); l.IsValid() {
				a.env.server = l.String()
			}
		}
		return a
	}
	var proc *ProcOptions
	cur := func() *ProcOptions {
		if proc == nil {
			proc = &ProcOptions{}
		}
		return proc
	}
	for _, o := range r.Options {
		switch o.Name {
		case "nice":
			n := 10
			if o.Arg != "" {
				n, _ = strconv.Atoi(o.Arg) // checked by the parser
			}
			cur().Nice = &n
		case "umask":
			v, _ := strconv.ParseUint(o.Arg, 8, 32)
			u := int(v)
			cur().Umask = &u
		case "user":
			u, g, _ := strings.Cut(o.Arg, ".")
			cur().User, cur().Group = u, g
		case "setenv":
			x := get()
			name, val, _ := strings.Cut(o.Arg, " ")
			cur().Env = append(cur().Env, name+"="+expand(strings.TrimSpace(val), &x.env))
		case "severity":
			get().Severity = o.Arg
		case "banners":
			x := get()
			x.Banners = o.Arg
			x.BannerFile = filepath.Join(o.Arg, filepath.Base(daemon))
		case "spawn":
			x := get()
			x.Spawn = expand(o.Arg, &x.env)
			x.SpawnProc = proc.clone()
		case "twist":
			x := get()
			x.Twist = expand(o.Arg, &x.env)
		}
	}
	if proc != nil {
		get().Proc = proc
	}
	return a
}

// safe reports whether tcp_wrappers lets byte c through unchanged in an
// expansion; everything else becomes '_' so that a hostile host name or
// ident answer cannot inject shell syntax into spawn/twist commands.
func safe(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!@%-_=+:,./", c) >= 0
}

func expand(s string, e *env) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		if s[i] == '%' {
			b.WriteByte('%')
			continue
		}
		v := e.value(s[i])
		for j := 0; j < len(v); j++ {
			if safe(v[j]) {
				b.WriteByte(v[j])
			} else {
				b.WriteByte('_')
			}
		}
	}
	return b.String()
}

func (e *env) hostOrAddr() string {
	if e.nameState == NameKnown && e.clientName != "" {
		return e.clientName
	}
	return e.client
}

func (e *env) value(c byte) string {
	switch c {
	case 'a':
		return e.client
	case 'A':
		return e.server
	case 'c':
		if e.user != "" {
			return e.user + "@" + e.hostOrAddr()
		}
		return e.hostOrAddr()
	case 'd':
		return e.daemon
	case 'h':
		return e.hostOrAddr()
	case 'H':
		return e.server
	case 'n':
		switch e.nameState {
		case NameKnown:
			return e.clientName
		case NameParanoid:
			return "paranoid"
		}
		return "unknown"
	case 'N':
		return "unknown"
	case 'p':
		return strconv.Itoa(os.Getpid())
	case 'r':
		return strconv.Itoa(int(e.clientPort))
	case 'R':
		return strconv.Itoa(int(e.serverPort))
	case 's':
		if e.server != "" {
			return e.daemon + "@" + e.server
		}
		return e.daemon
	case 'u':
		if e.user != "" {
			return e.user
		}
		return "unknown"
	}
	// tcp_wrappers expands an unknown sequence to nothing.
	return ""
}
