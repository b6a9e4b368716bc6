package seccomp

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/suggest"
)

// ActionKind is what the filter does with a system call.
type ActionKind uint8

const (
	// Allow lets the call through.
	Allow ActionKind = iota
	// Kill ends the whole process with SIGSYS (SECCOMP_RET_KILL_PROCESS);
	// the daemon's EXIT record then says signal=31.
	Kill
	// Errno fails the call with Action.Errno, without running it.
	Errno
	// Log lets the call through and logs it to the kernel's audit log.
	Log
)

// Action is an ActionKind with its errno.
type Action struct {
	Kind  ActionKind
	Errno uint16
}

// ret is the filter's return value for a.
func (a Action) ret() uint32 {
	switch a.Kind {
	case Kill:
		return unix.SECCOMP_RET_KILL_PROCESS
	case Errno:
		return unix.SECCOMP_RET_ERRNO | uint32(a.Errno)&unix.SECCOMP_RET_DATA
	case Log:
		return unix.SECCOMP_RET_LOG
	}
	return unix.SECCOMP_RET_ALLOW
}

func (a Action) String() string {
	switch a.Kind {
	case Kill:
		return "deny"
	case Errno:
		if n := unix.ErrnoName(unix.Errno(a.Errno)); n != "" {
			return "errno:" + n
		}
		return "errno:" + strconv.Itoa(int(a.Errno))
	case Log:
		return "log"
	}
	return "allow"
}

// parseAction reads allow, deny (or kill), log, errno:NAME or errno:N.
func parseAction(w string) (Action, bool) {
	switch strings.ToLower(w) {
	case "allow":
		return Action{Kind: Allow}, true
	case "deny", "kill":
		return Action{Kind: Kill}, true
	case "log":
		return Action{Kind: Log}, true
	}
	lw := strings.ToLower(w)
	if !strings.HasPrefix(lw, "errno:") {
		return Action{}, false
	}
	v := w[len("errno:"):]
	if n, err := strconv.ParseUint(v, 10, 16); err == nil {
		if n == 0 || n > 4095 {
			return Action{}, false
		}
		return Action{Kind: Errno, Errno: uint16(n)}, true
	}
	if e := errnoByName(strings.ToUpper(v)); e != 0 {
		return Action{Kind: Errno, Errno: uint16(e)}, true
	}
	return Action{}, false
}

// errnoByName finds an errno by its C name (EPERM, ENOSYS, ...).
func errnoByName(name string) unix.Errno {
	for e := unix.Errno(1); e < 4096; e++ {
		if unix.ErrnoName(e) == name {
			return e
		}
	}
	return 0
}

// cond tests the low 32 bits of one argument: (arg & mask) == value, or
// with anySet, (arg & mask) != 0.
type cond struct {
	arg    int
	mask   uint32
	value  uint32
	anySet bool
}

// condSet holds when every cond in it holds.
type condSet []cond

// Rule gives one system call an action, always or only when one of its
// condition sets holds.
type Rule struct {
	Action  Action
	Syscall string
	when    []condSet // nil: always
	// Line and Col locate the rule in its profile text (0 for the
	// rules of a built-in profile or group).
	Line, Col int
}

// Conditional reports whether the rule looks at the call's arguments.
func (r Rule) Conditional() bool { return r.when != nil }

// Profile is a parsed profile: the action for calls no rule names, and
// the rules in order. A later rule for the same call overrides an
// earlier unconditional one.
type Profile struct {
	Name    string
	Default Action
	Rules   []Rule
}

// member is one system call of a group, possibly only with some
// arguments.
type member struct {
	name string
	when []condSet
}

func plain(names ...string) []member {
	out := make([]member, len(names))
	for i, n := range names {
		out[i] = member{name: n}
	}
	return out
}

// Argument values the groups test. Kept here rather than taken from
// unix so that both architectures' filters are built from one table.
const (
	afInet      = 2
	afInet6     = 10
	afPacket    = 17
	sockRaw     = 3
	sockTypeMsk = 0xf // the type without SOCK_NONBLOCK and SOCK_CLOEXEC
	// cloneNewMask is every CLONE_NEW* flag that clone(2) accepts
	// (CLONE_NEWTIME, 0x80, is the exit-signal byte there).
	cloneNewMask = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
)

// groups are the named sets a profile can use as @name. Their members
// are names on some architecture; a member missing on the target
// architecture is skipped.
var groups = map[string][]member{
	"@ptrace":  plain("ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"),
	"@mount":   plain("mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr", "open_tree_attr"),
	"@kexec":   plain("kexec_load", "kexec_file_load"),
	"@module":  plain("init_module", "finit_module", "delete_module", "create_module", "query_module"),
	"@bpf":     plain("bpf"),
	"@keyring": plain("keyctl", "add_key", "request_key"),
	"@namespaces": {
		{name: "unshare"}, {name: "setns"},
		{name: "clone", when: []condSet{{{arg: 0, mask: cloneNewMask, anySet: true}}}},
	},
	"@raw-sockets": {
		{name: "socket", when: []condSet{
			{{arg: 0, mask: ^uint32(0), value: afPacket}},
			{{arg: 0, mask: ^uint32(0), value: afInet}, {arg: 1, mask: sockTypeMsk, value: sockRaw}},
			{{arg: 0, mask: ^uint32(0), value: afInet6}, {arg: 1, mask: sockTypeMsk, value: sockRaw}},
		}},
	},
	"@swap":   plain("swapon", "swapoff"),
	"@reboot": plain("reboot"),
	"@clock":  plain("settimeofday", "clock_settime", "clock_adjtime", "adjtimex"),
	// @kernel is the rest of what only an administrator or an exploit
	// calls: perf events, userfaultfd and io_uring (each a frequent
	// kernel exploit primitive), handles that bypass a chroot, raw port
	// I/O, accounting, quotas and the kernel log.
	"@kernel": plain("perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
		"open_by_handle_at", "name_to_handle_at", "iopl", "ioperm", "acct", "quotactl", "quotactl_fd", "syslog",
		"vhangup", "lookup_dcookie", "nfsservctl", "uselib", "_sysctl", "sysfs", "ustat", "fanotify_init"),
}

// GroupNames lists the @groups, sorted.
func GroupNames() []string {
	out := make([]string, 0, len(groups))
	for g := range groups {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// GroupMembers lists a group's system calls (for documentation).
func GroupMembers(g string) []string {
	var out []string
	for _, m := range groups[g] {
		if m.when != nil {
			out = append(out, m.name+"(some arguments)")
			continue
		}
		out = append(out, m.name)
	}
	return out
}

// defaultGroups are what the built-in "default" profile denies.
var defaultGroups = []string{"@ptrace", "@mount", "@kexec", "@module", "@bpf", "@keyring", "@namespaces",
	"@raw-sockets", "@swap", "@reboot", "@clock", "@kernel"}

// builtins are the profiles a configuration names without a file.
var builtins = map[string]func() *Profile{
	// default lets ordinary programs run and kills any attempt at the
	// calls a network server has no business making.
	"default": func() *Profile {
		p := &Profile{Name: "default", Default: Action{Kind: Allow}}
		for _, g := range defaultGroups {
			p.Rules = appendGroup(p.Rules, g, Action{Kind: Kill}, 0, 0)
		}
		// clone3 passes its flags in memory the filter cannot read:
		// ENOSYS makes the C library fall back to clone, whose flags
		// it can.
		p.Rules = append(p.Rules, Rule{Action: Action{Kind: Errno, Errno: uint16(unix.ENOSYS)}, Syscall: "clone3"})
		return p
	},
}

// BuiltinNames lists the built-in profiles, sorted.
func BuiltinNames() []string {
	out := make([]string, 0, len(builtins))
	for n := range builtins {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Builtin returns a built-in profile by name.
func Builtin(name string) (*Profile, bool) {
	f, ok := builtins[name]
	if !ok {
		return nil, false
	}
	return f(), true
}

func appendGroup(rules []Rule, g string, a Action, line, col int) []Rule {
	for _, m := range groups[g] {
		rules = append(rules, Rule{Action: a, Syscall: m.name, when: m.when, Line: line, Col: col})
	}
	return rules
}

// alwaysAllowed are the calls gxinetd itself makes after the filter is
// in place (rt_sigprocmask, execve) or that no program can do without.
// A profile may not deny them; execve and execveat may be denied, and
// the filter then lets through only gxinetd's own execve of the server.
var alwaysAllowed = []string{"rt_sigprocmask", "rt_sigreturn", "exit", "exit_group"}

// Error is a problem in a profile's text, at a 1-based line and column.
type Error struct {
	Line, Col int
	Msg       string
}

func (e *Error) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// maxProfile bounds a profile file; real ones are a few hundred bytes.
const maxProfile = 1 << 20

// Parse reads a profile's text:
//
//	# comment
//	default ACTION          the action for calls no rule names (allow)
//	include NAME            the rules of a built-in profile, here
//	ACTION NAME...          system calls or @groups
//
// where ACTION is allow, deny (kill the process), log or errno:NAME (fail
// the call, e.g. errno:EPERM). Later rules override earlier ones for the
// same call. Every problem is returned, not only the first.
func Parse(name string, text []byte) (*Profile, []*Error) {
	p := &Profile{Name: name, Default: Action{Kind: Allow}}
	var errs []*Error
	if len(text) > maxProfile {
		return nil, []*Error{{Line: 1, Col: 1, Msg: fmt.Sprintf("profile is too large (%d bytes, the limit is %d)", len(text), maxProfile)}}
	}
	defaultLine := 0
	for i, ln := range strings.Split(string(text), "\n") {
		line := i + 1
		ln = strings.TrimSuffix(ln, "\r")
		ws := fieldsCols(ln)
		if len(ws) == 0 {
			continue
		}
		if strings.ContainsRune(ln, 0) {
			errs = append(errs, &Error{Line: line, Col: 1, Msg: "line contains a NUL byte"})
			continue
		}
		head := ws[0]
		switch strings.ToLower(head.text) {
		case "default":
			if len(ws) != 2 {
				errs = append(errs, &Error{Line: line, Col: head.col, Msg: "default takes one action (allow, deny, log or errno:NAME)"})
				continue
			}
			if defaultLine != 0 {
				errs = append(errs, &Error{Line: line, Col: head.col, Msg: fmt.Sprintf("default is already set on line %d", defaultLine)})
				continue
			}
			a, ok := parseAction(ws[1].text)
			if !ok {
				errs = append(errs, &Error{Line: line, Col: ws[1].col, Msg: "unknown action " + strconv.Quote(ws[1].text) + " (allow, deny, log or errno:NAME)"})
				continue
			}
			p.Default, defaultLine = a, line
		case "include":
			if len(ws) != 2 {
				errs = append(errs, &Error{Line: line, Col: head.col, Msg: "include takes one built-in profile name (" + strings.Join(BuiltinNames(), ", ") + ")"})
				continue
			}
			b, ok := Builtin(ws[1].text)
			if !ok {
				errs = append(errs, &Error{Line: line, Col: ws[1].col, Msg: "unknown built-in profile " + strconv.Quote(ws[1].text) + " (" + strings.Join(BuiltinNames(), ", ") + ")"})
				continue
			}
			for _, r := range b.Rules {
				r.Line, r.Col = line, ws[1].col
				p.Rules = append(p.Rules, r)
			}
		default:
			a, ok := parseAction(head.text)
			if !ok {
				errs = append(errs, &Error{Line: line, Col: head.col, Msg: "unknown action or keyword " + strconv.Quote(head.text) + " (allow, deny, log, errno:NAME, default or include)"})
				continue
			}
			if len(ws) < 2 {
				errs = append(errs, &Error{Line: line, Col: head.col, Msg: head.text + " needs at least one system call or @group"})
				continue
			}
			for _, w := range ws[1:] {
				if strings.HasPrefix(w.text, "@") {
					if _, ok := groups[w.text]; !ok {
						errs = append(errs, &Error{Line: line, Col: w.col, Msg: "unknown group " + strconv.Quote(w.text) + " (" + strings.Join(GroupNames(), ", ") + ")"})
						continue
					}
					p.Rules = appendGroup(p.Rules, w.text, a, line, w.col)
					continue
				}
				if !Known(w.text) {
					errs = append(errs, &Error{Line: line, Col: w.col, Msg: "unknown system call " + strconv.Quote(w.text) + didYouMean(w.text)})
					continue
				}
				if a.Kind != Allow && isAlwaysAllowed(w.text) {
					errs = append(errs, &Error{Line: line, Col: w.col, Msg: w.text + " is always allowed: gxinetd needs it to start the server, and no program can run without it"})
					continue
				}
				p.Rules = append(p.Rules, Rule{Action: a, Syscall: w.text, Line: line, Col: w.col})
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

func isAlwaysAllowed(name string) bool {
	for _, n := range alwaysAllowed {
		if n == name {
			return true
		}
	}
	return false
}

type colWord struct {
	text string
	col  int
}

// fieldsCols splits a line into blank-separated words with their 1-based
// columns, dropping a comment that starts a word.
func fieldsCols(ln string) []colWord {
	var out []colWord
	i := 0
	for i < len(ln) {
		for i < len(ln) && (ln[i] == ' ' || ln[i] == '\t') {
			i++
		}
		if i == len(ln) || ln[i] == '#' {
			break
		}
		j := i
		for j < len(ln) && ln[j] != ' ' && ln[j] != '\t' {
			j++
		}
		out = append(out, colWord{text: ln[i:j], col: i + 1})
		i = j
	}
	return out
}

// didYouMean names the closest known system call, for typos.
func didYouMean(w string) string {
	if best := suggest.Closest(w, names()); best != "" {
		return "; did you mean " + best + "?"
	}
	return ""
}
