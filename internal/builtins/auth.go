package builtins

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// RFC 1413 error tokens.
const (
	identInvalidPort = "INVALID-PORT"
	identNoUser      = "NO-USER"
	identHidden      = "HIDDEN-USER"
	identUnknown     = "UNKNOWN-ERROR"
)

// DefaultOSName is the operating-system field of auth replies. RFC 1413
// takes the names from the IANA system-name registry, where "UNIX" is
// the generic entry; FreeBSD sends uname's sysname instead (-o changes it).
const DefaultOSName = "UNIX"

// maxIdentName is FreeBSD's MAXLOGNAME-1: the longest name auth sends
// for -g and for a ~/.fakeid entry.
const maxIdentName = 32

// AuthOptions are FreeBSD inetd's arguments to its auth builtin.
type AuthOptions struct {
	// Real (-r) answers with the connection owner. Without it every
	// query gets HIDDEN-USER, or the Fallback name when one is set.
	Real bool
	// Fallback (-d NAME) is the name sent when the owner cannot be told
	// (not Real, connection not found, lookup failure).
	Fallback string
	// Random (-g) answers every valid query with a fresh random name.
	Random bool
	// Timeout (-t SEC[.FRAC]) bounds reading the query; 0 means
	// Env.ReadTimeout.
	Timeout time.Duration
	// Numeric (-i) sends the uid instead of the user name.
	Numeric bool
	// FakeID (-f) lets users name themselves in ~/.fakeid, unless the
	// name is another user's; FakeIDAny (-F) allows any name.
	FakeID    bool
	FakeIDAny bool
	// NoIdent (-n) answers HIDDEN-USER for users who have ~/.noident.
	NoIdent bool
	// OSName (-o NAME) replaces DefaultOSName in the reply.
	OSName string
}

// ParseAuthOptions reads FreeBSD's auth options (getopt "d:fFgino:rt:":
// flags may be grouped, an option's value may be attached or the next
// word, parsing stops at "--" or the first non-option). Unknown options
// and bad values are reported in the error while the remaining options
// still apply, as FreeBSD ignores them; the daemon may show the error
// when it checks the configuration.
func ParseAuthOptions(args []string) (AuthOptions, error) {
	var o AuthOptions
	var errs []error
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			value := func() (string, bool) {
				if j+1 < len(a) {
					v := a[j+1:]
					j = len(a)
					return v, true
				}
				if i+1 < len(args) {
					i++
					return args[i], true
				}
				errs = append(errs, fmt.Errorf("option -%c needs a value", c))
				return "", false
			}
			switch c {
			case 'r':
				o.Real = true
			case 'g':
				o.Random = true
			case 'i':
				o.Numeric = true
			case 'n':
				o.NoIdent = true
			case 'f':
				o.FakeID = true
			case 'F':
				o.FakeID, o.FakeIDAny = true, true
			case 'd':
				if v, ok := value(); ok {
					if name, ok := identToken(v, maxIdentName); ok {
						o.Fallback = name
					} else {
						errs = append(errs, fmt.Errorf("-d %q: not a usable name", v))
					}
				}
			case 'o':
				if v, ok := value(); ok {
					if name, ok := identToken(v, 64); ok {
						o.OSName = name
					} else {
						errs = append(errs, fmt.Errorf("-o %q: not a usable system name", v))
					}
				}
			case 't':
				if v, ok := value(); ok {
					d, err := time.ParseDuration(v + "s")
					if err != nil || d <= 0 || strings.ContainsAny(v, "+-") {
						errs = append(errs, fmt.Errorf("-t %q: want seconds, like 10 or 2.5", v))
					} else {
						o.Timeout = d
					}
				}
			default:
				errs = append(errs, fmt.Errorf("unknown option -%c", c))
			}
		}
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("builtins: auth: %w", errors.Join(errs...))
	}
	return o, nil
}

// identToken checks a name that goes into a reply: printable, no
// blanks, at most max bytes.
func identToken(s string, max int) (string, bool) {
	if s == "" || len(s) > max {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return "", false
		}
	}
	return s, true
}

// authArgs finds the options in a service's argument vector. inetd.conf
// lines give argv[0] ("auth -r"), xinetd entries only server_args; a
// leading word that is not an option is taken for argv[0].
func authArgs(svc *service.Service) []string {
	if svc == nil {
		return nil
	}
	args := svc.Argv
	if len(args) == 0 {
		args = svc.ServerArgs
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = args[1:]
	}
	return args
}

// ParseAuthQuery reads an RFC 1413 query, `PORT-ON-SERVER , PORT-ON-CLIENT`,
// with blanks allowed around both numbers and the line terminator
// already removed. A line that is not of that form gives ports 0, 0; a
// well-formed query with a port outside 1..65535 gives the ports as
// written. Either way the error wraps ErrBadRequest and the answer is
// INVALID-PORT.
func ParseAuthQuery(line []byte) (lport, rport int, err error) {
	i := 0
	skip := func() {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
			i++
		}
	}
	number := func() (int, bool) {
		start, n := i, 0
		for i < len(line) && '0' <= line[i] && line[i] <= '9' {
			n = n*10 + int(line[i]-'0')
			i++
			if i-start > 5 {
				return 0, false
			}
		}
		return n, i > start
	}
	bad := fmt.Errorf("%w: not \"port , port\"", ErrBadRequest)
	skip()
	l, ok := number()
	if !ok {
		return 0, 0, bad
	}
	skip()
	if i >= len(line) || line[i] != ',' {
		return 0, 0, bad
	}
	i++
	skip()
	r, ok := number()
	if !ok {
		return 0, 0, bad
	}
	skip()
	if i != len(line) {
		return 0, 0, bad
	}
	if l < 1 || l > 65535 || r < 1 || r > 65535 {
		return l, r, fmt.Errorf("%w: port out of range", ErrBadRequest)
	}
	return l, r, nil
}

func authStream(ctx context.Context, conn net.Conn, svc *service.Service, env *Env) error {
	opts, _ := ParseAuthOptions(authArgs(svc))
	osName := opts.OSName
	if osName == "" {
		osName = DefaultOSName
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = env.readTimeout()
	}
	send := func(reply string, err error) error {
		werr := writeAndClose(ctx, conn, timeout, "auth", []byte(reply))
		if err != nil {
			return fmt.Errorf("builtins: auth: %w", err)
		}
		return werr
	}
	errorReply := func(l, r int, token string) string {
		return fmt.Sprintf("%d , %d : ERROR : %s\r\n", l, r, token)
	}

	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(longAgo) })
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		stop()
		conn.Close()
		return fmt.Errorf("builtins: auth: %w", err)
	}
	line, err := ReadLine(conn, MaxAuthQuery)
	stop()
	if cerr := ctx.Err(); cerr != nil {
		conn.Close()
		return fmt.Errorf("builtins: auth: %w", cerr)
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("%w: no query within %v", ErrBadRequest, timeout)
		} else if err == io.EOF {
			err = fmt.Errorf("%w: connection closed before a query", ErrBadRequest)
		}
		return send(errorReply(0, 0, identInvalidPort), err)
	}
	lport, rport, err := ParseAuthQuery(line)
	if err != nil {
		return send(errorReply(lport, rport, identInvalidPort), fmt.Errorf("%q: %w", sanitize(line), err))
	}
	ok := func(id string) error {
		return send(fmt.Sprintf("%d , %d : USERID : %s : %s\r\n", lport, rport, osName, id), nil)
	}
	// fallback answers with -d's name when there is one, else the error.
	fallback := func(token string, cause error) error {
		if opts.Fallback != "" {
			return ok(opts.Fallback)
		}
		return send(errorReply(lport, rport, token), cause)
	}

	if opts.Random {
		return ok(randomName())
	}
	if !opts.Real {
		return fallback(identHidden, nil)
	}
	local, lok := tcpAddrPort(conn.LocalAddr())
	remote, rok := tcpAddrPort(conn.RemoteAddr())
	if !lok || !rok {
		return fallback(identUnknown, errors.New("connection has no TCP addresses"))
	}
	uid, err := env.connUID(netip.AddrPortFrom(local.Addr(), uint16(lport)), netip.AddrPortFrom(remote.Addr(), uint16(rport)))
	switch {
	case errors.Is(err, ErrNoConn):
		return fallback(identNoUser, nil)
	case err != nil:
		return fallback(identUnknown, err)
	}
	user, found := env.users().LookupUID(uid)
	if !found {
		if opts.Numeric {
			return ok(strconv.Itoa(uid))
		}
		return send(errorReply(lport, rport, identNoUser), nil)
	}
	id := user.Name
	if opts.Numeric {
		id = strconv.Itoa(uid)
	}
	if opts.NoIdent {
		if _, err := os.Lstat(filepath.Join(user.Home, ".noident")); err == nil {
			return send(errorReply(lport, rport, identHidden), nil)
		}
	}
	if opts.FakeID {
		if fake, good := readFakeID(user.Home, uid); good && acceptFakeID(fake, opts, env) {
			id = fake
		}
	}
	return ok(id)
}

func tcpAddrPort(a net.Addr) (netip.AddrPort, bool) {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return ap, ap.IsValid()
	}
	return netip.AddrPort{}, false
}

// randomName is -g's answer: 32 base-36 characters.
func randomName() string {
	const base36 = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [maxIdentName]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = base36[int(b[i])%len(base36)]
	}
	return string(b[:])
}

// readFakeID reads the first word of HOME/.fakeid. FreeBSD opens it
// after seteuid to the user; a Go daemon cannot change its identity for
// one goroutine, so the file must instead be a regular file owned by
// that user and reached without following a symbolic link at its last
// component — it then holds nothing the user could not read anyway.
func readFakeID(home string, uid int) (string, bool) {
	if home == "" {
		return "", false
	}
	f, err := os.OpenFile(filepath.Join(home, ".fakeid"), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != uid {
		return "", false
	}
	var buf [1024]byte
	n, _ := io.ReadFull(f, buf[:])
	return ParseFakeID(buf[:n])
}

// ParseFakeID takes the identity out of a ~/.fakeid file: the first
// word, after leading blanks, cut at 32 bytes. A file whose word holds
// control bytes or that has no word is not used.
func ParseFakeID(b []byte) (string, bool) {
	s := strings.TrimLeft(string(b), " \t")
	if i := strings.IndexAny(s, " \t\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > maxIdentName {
		s = s[:maxIdentName]
	}
	return identToken(s, maxIdentName)
}

// acceptFakeID refuses, unless -F, a fake identity that names an
// existing user (by uid with -i, by name otherwise).
func acceptFakeID(fake string, opts AuthOptions, env *Env) bool {
	if opts.FakeIDAny {
		return true
	}
	if opts.Numeric {
		if n, err := strconv.Atoi(fake); err == nil && strings.Trim(fake, "0123456789") == "" {
			if _, taken := env.users().LookupUID(n); taken {
				return false
			}
		}
		return true
	}
	_, taken := env.users().LookupUser(fake)
	return !taken
}
