package inetd

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
)

// Options says how to read an inetd.conf.
type Options struct {
	// Sys answers services/protocols/rpc/passwd/group lookups; nil means
	// sysdb.System.
	Sys *sysdb.DB
	// Dialect is "freebsd", "openbsd", "netbsd" or "linux"; "" means
	// the dialect Detect recognises in the file (DefaultDialect when
	// nothing in it decides). See Dialects.
	Dialect string

	// The FreeBSD inetd command-line limits. They apply to entries that
	// do not set their own and are recorded with Origin "flag".

	// MaxChild is -c: simultaneous children per service (0 = unlimited).
	MaxChild int
	// PerIPPerMinute is -C: connections per client address per minute
	// (0 = unlimited).
	PerIPPerMinute int
	// PerMinute is -R: invocations per service per minute. 0 means the
	// dialect's own default (256 for FreeBSD, OpenBSD and Linux, 40 for
	// NetBSD); a negative value means no limit, which FreeBSD spells
	// -R 0.
	PerMinute int
	// MaxChildPerIP is -s: simultaneous children per client address
	// (0 = unlimited).
	MaxChildPerIP int
	// BindAddr is -a: the address entries without an address prefix
	// listen on.
	BindAddr string
	// KeepUnknownNames is for converters (xconv): a user, group, service
	// or RPC program that this machine does not know is kept by name
	// (a Cred with ID -1, port 0) with a W-UNKNOWN-NAME warning instead
	// of rejecting the entry. The daemon never sets it.
	KeepUnknownNames bool
	// CheckOwnership (meant for a daemon running as root) refuses a
	// configuration file that anyone but root could change, and entries
	// whose server could be replaced by someone other than root or the
	// entry's own user: the rule of internal/pathsafe, shared with
	// xinetd.conf, over every component of the path and of every link.
	CheckOwnership bool
}

// DefaultDialect is the dialect used when Options.Dialect is empty.
// gxinetd is mostly run on Linux, where the inetd.conf a user has was
// written for Debian's openbsd-inetd, so plain tcp/udp listen on both
// IPv4 and IPv6 (one dual-stack socket) as they do there.
const DefaultDialect = "linux"

// Dialects lists the accepted Options.Dialect values.
var Dialects = []string{"freebsd", "openbsd", "netbsd", "linux"}

// dialect is what differs between the inetds. Every dialect accepts every
// form (the forms do not collide); a form that is not native to the
// selected dialect is read as the dialect that has it does and noted.
type dialect struct {
	name string
	// plainDual: plain tcp/udp on a wildcard address listen on both
	// families (Debian) rather than IPv4 only.
	plainDual bool
	// quoting: a word that starts with ' or " runs to the matching quote
	// (FreeBSD, NetBSD); elsewhere quotes are ordinary characters.
	quoting bool
	// defaultRate is the invocations-per-minute limit applied when the
	// entry and the command line give none.
	defaultRate int
	// native forms, for the N-DIALECT notices.
	slashLimits bool // wait/max-child/per-ip-per-minute/per-ip-children
	dotRate     bool // wait.N
	colonRate   bool // wait:N
	addrPrefix  bool // addr: prefixes and default-address lines
	dual46      bool // tcp46/udp46
	bufOpts     bool // ,sndbuf=N,rcvbuf=N
	unixSock    bool
	tcpmux      bool
	loginClass  bool
}

var dialects = map[string]*dialect{
	"freebsd": {name: "freebsd", quoting: true, defaultRate: 256, slashLimits: true,
		dual46: true, unixSock: true, tcpmux: true, loginClass: true},
	"openbsd": {name: "openbsd", defaultRate: 256, dotRate: true, addrPrefix: true, unixSock: true},
	"netbsd": {name: "netbsd", quoting: true, defaultRate: 40, dotRate: true, colonRate: true,
		addrPrefix: true, bufOpts: true, unixSock: true},
	"linux": {name: "linux", plainDual: true, defaultRate: 256, dotRate: true, addrPrefix: true,
		dual46: true, bufOpts: true, unixSock: true},
}

// Diagnostic codes. They are stable: scripts and tests match on them, and
// docs/config.md ("inetd.conf" under Diagnostics) lists each with its
// meaning; TestEveryCodeDocumented fails for one it does not list.
const (
	CodeFile         = "E-FILE"          // the file cannot be read
	CodeFilePerm     = "E-FILE-PERM"     // the file is writable by someone other than root
	CodeDialect      = "E-DIALECT"       // unknown Options.Dialect
	CodeOption       = "E-OPTION"        // bad command-line value (BindAddr)
	CodeLineTooLong  = "E-LINE-TOO-LONG" // a line over MaxLine bytes
	CodeBinary       = "E-BINARY"        // a NUL byte in a line
	CodeFields       = "E-FIELDS"        // a required field is missing
	CodeQuote        = "E-QUOTE"         // unterminated quote
	CodeContinuation = "E-CONTINUATION"  // indented line with nothing to continue
	CodeNotation     = "E-NOTATION"      // NetBSD key=value notation
	CodeAddr         = "E-ADDR"          // bad listen-address prefix
	CodeService      = "E-SERVICE"       // unknown service name, bad port
	CodeRPC          = "E-RPC"           // bad RPC program or version
	CodeTCPMux       = "E-TCPMUX"        // bad tcpmux/NAME entry
	CodeUnix         = "E-UNIX"          // bad unix-domain path or :user:group:mode: prefix
	CodeSockType     = "E-SOCKTYPE"      // unknown socket type or NetBSD socket-type option
	CodeProto        = "E-PROTO"         // unknown protocol or one that does not fit the socket type
	CodeProtoOpt     = "E-PROTO-OPT"     // bad ,sndbuf=/,rcvbuf= option
	CodeWait         = "E-WAIT"          // bad wait/nowait field or limit
	CodeUser         = "E-USER"          // unknown user
	CodeGroup        = "E-GROUP"         // unknown group
	CodeServer       = "E-SERVER"        // server path not absolute, or (CheckOwnership) missing
	CodeServerPerm   = "E-SERVER-PERM"   // server replaceable by someone other than root or its user
	CodeInternal     = "E-INTERNAL"      // no such internal service
	CodeIncludeErr   = "E-INCLUDE"       // a NetBSD .include that cannot be read
	CodeIncludeCycle = "E-INCLUDE-CYCLE" // a file that includes itself

	CodeCRLF           = "W-CRLF"             // CRLF line ends (stripped)
	CodeIndentComment  = "W-INDENTED-COMMENT" // indented # line read as a comment
	CodeIPsec          = "W-IPSEC"            // #@ IPsec policy lines are not supported
	CodeInclude        = "W-INCLUDE"          // a NetBSD .include pattern that matches no file
	CodeLoginClass     = "W-LOGIN-CLASS"      // FreeBSD /login-class is not supported
	CodeAcceptFilter   = "W-ACCEPT-FILTER"    // NetBSD :accept-filter is not supported
	CodeArgv0          = "W-ARGV0"            // no argv[0] given
	CodeInternalArgs   = "W-INTERNAL-ARGS"    // arguments to a builtin that takes none
	CodeWaitForced     = "W-WAIT-FORCED"      // wait changed to nowait, as inetd does
	CodeDuplicate      = "W-DUPLICATE"        // an earlier entry already listens there
	CodeUnknownName    = "W-UNKNOWN-NAME"     // KeepUnknownNames: a name this machine does not know
	CodeDgramNowait    = "W-DGRAM-NOWAIT"     // an external dgram service with nowait
	CodeBindFamily     = "W-BIND-FAMILY"      // -a address does not fit the entry's family
	CodeDialectNotice  = "N-DIALECT"          // which dialect's reading was used
	CodeDialectChosen  = "N-DIALECT-CHOSEN"   // the dialect of the whole file, and why
	CodeDialectSignals = "W-DIALECT-SIGNALS"  // the file's dialect signals disagree
	CodeDefaultAddress = "N-DEFAULT-ADDRESS"  // an addr: line changes the default address
	CodeOff            = "N-OFF"              // a key=value definition marked off
)

// MaxLine is the longest line accepted, in bytes (the inetds themselves
// use buffers of a few KiB; anything this long is not a real entry).
const MaxLine = 64 << 10

// Load reads and parses an inetd.conf file. A file that cannot be read
// gives a fatal E-FILE diagnostic and no services.
func Load(path string, opt Options) ([]*service.Service, service.Diags) {
	if opt.CheckOwnership {
		if d, bad := checkFileOwner(path); bad {
			return nil, service.Diags{d}
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, service.Diags{{Pos: service.Source{File: path}, Severity: service.SevError, Code: CodeFile,
			Msg: fmt.Sprintf("cannot read inetd.conf: %v", err), Fatal: true}}
	}
	return Parse(path, data, opt)
}

// Parse parses inetd.conf text; name is used in positions. It returns
// every entry (accepted and rejected, in file order; one per address for
// multi-address lines) and every diagnostic.
func Parse(name string, data []byte, opt Options) ([]*service.Service, service.Diags) {
	p := &parser{file: name, root: name, opt: opt, sys: opt.Sys}
	if p.sys == nil {
		p.sys = sysdb.System
	}
	dn := strings.ToLower(opt.Dialect)
	if dn != "" && dialects[dn] == nil {
		p.diags = append(p.diags, service.Diag{Pos: service.Source{File: name, Origin: "flag"}, Severity: service.SevError,
			Code: CodeDialect, Fatal: true,
			Msg: fmt.Sprintf("unknown inetd.conf dialect %q (want one of %s)", opt.Dialect, strings.Join(Dialects, ", "))})
		return nil, p.diags
	}
	if !p.parseBindOption() {
		return nil, p.diags
	}
	det := detectFor(data, dn)
	p.d = dialects[det.Dialect]
	p.reportDialect(det)
	p.read(data)
	p.finish()
	return p.out, p.diags
}

// reportDialect says which dialect the file is read with and why, and
// warns when the file's own evidence points elsewhere.
func (p *parser) reportDialect(det Detection) {
	// About the whole file: the reasons name their lines.
	pos := service.Source{File: p.file}
	p.diags = append(p.diags, service.Diag{Pos: pos, Severity: service.SevNotice, Code: CodeDialectChosen,
		Msg: fmt.Sprintf("read as the %s inetd.conf dialect: %s", det.Dialect, det.Reason())})
	if len(det.Against) == 0 {
		return
	}
	msg := fmt.Sprintf("the file's dialect signals disagree: it is read as %s, but %s; choose with -dialect if %s is not right",
		det.Dialect, strings.Join(det.Against, "; "), det.Dialect)
	if det.Explicit {
		msg = fmt.Sprintf("-dialect %s, but the file points elsewhere: %s", det.Dialect, strings.Join(det.Against, "; "))
	}
	p.diags = append(p.diags, service.Diag{Pos: service.Source{File: p.file}, Severity: service.SevWarning, Code: CodeDialectSignals, Msg: msg})
}

// SniffLines is how many lines Sniff reads at most: a caller may pass
// only the file's beginning, as long as it holds that many lines.
const SniffLines = 1000

// Sniff reports whether data looks like inetd.conf rather than
// xinetd.conf: the first line that decides is an inetd.conf entry (six
// or more words, a socket type second and wait/nowait fourth) or an
// inetd.conf default-address line, before anything that looks like
// xinetd.conf (service/defaults/include keywords, braces, attr = value).
func Sniff(data []byte) bool {
	// Line by line over the bytes themselves: a large xinetd.conf is
	// decided on its first lines, and splitting (or copying) the whole
	// file to get at them once cost twice the file's size in garbage.
	for i := 0; i < SniffLines && len(data) > 0; i++ {
		var b []byte
		if k := bytes.IndexByte(data, '\n'); k >= 0 {
			b, data = data[:k], data[k+1:]
		} else {
			b, data = data, nil
		}
		t := strings.TrimLeft(strings.TrimRight(string(b), "\r"), " \t")
		if t == "" || t[0] == '#' {
			continue
		}
		f := strings.Fields(t)
		switch strings.ToLower(f[0]) {
		case "service", "defaults", "include", "includedir", "{", "}":
			return false
		}
		if len(f) >= 2 && (f[1] == "=" || f[1] == "+=" || f[1] == "-=") {
			return false
		}
		if len(f) == 1 && strings.HasSuffix(f[0], ":") {
			return true
		}
		if len(f) >= 5 {
			st := f[1]
			if k := strings.IndexAny(st, ",:"); k >= 0 {
				st = st[:k]
			}
			_, okST := service.ParseSocketType(st)
			w := strings.ToLower(f[3])
			if okST && (strings.HasPrefix(w, "wait") || strings.HasPrefix(w, "nowait")) {
				return true
			}
		}
		return false
	}
	return false
}
