package parser

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gxinetd/gxinetd/internal/service"
)

// parseAddr turns one only_from / no_access word into entries, trying the
// forms of xinetd §5.1 by their shape: factorised a.b.{x,y}, ADDR/BITS,
// numeric IPv6, numeric IPv4 (inet_aton forms, implicit mask), .domain,
// an /etc/networks name, then a host name.
func (e *entry) parseAddr(out []service.AddrEntry, a *attrLine, i int, w word) ([]service.AddrEntry, bool) {
	text := w.text
	src := srcOf(e.file, a.line, w.col)
	bad := func(msg string) ([]service.AddrEntry, bool) {
		e.valueErr(a, i, msg)
		return out, false
	}
	switch {
	case text[0] == '#':
		// xinetd drops the word and reads the rest as host names, so
		// `only_from = 10.0.0.1 # office` also lets in a host "office".
		return bad(fmt.Sprintf("%q is not an address: a comment must start its own line (xinetd drops this word and reads the words after it as host names)", clip(text)))
	case strings.IndexByte(text, '{') >= 0:
		return e.factorised(out, a, i, w, src)
	case strings.IndexByte(text, ',') >= 0:
		return bad("Address: " + text + " has a comma in it - remove the comma")
	case strings.IndexByte(text, '/') >= 0:
		slash := strings.IndexByte(text, '/')
		addrText, bitsText := text[:slash], text[slash+1:]
		var ip netip.Addr
		if strings.IndexByte(addrText, ':') >= 0 {
			v, err := netip.ParseAddr(addrText)
			if err != nil || v.Zone() != "" {
				return bad("Bad address: " + text)
			}
			ip = v
		} else {
			v, ok := inetAton(addrText)
			if !ok {
				return bad("Bad address: " + text)
			}
			ip = v
		}
		bits, err := strconv.Atoi(bitsText)
		if err != nil || !allDigits(bitsText) || bits > ip.BitLen() {
			return bad(fmt.Sprintf("Bad address: %s (the prefix length must be 0 to %d)", text, ip.BitLen()))
		}
		p := netip.PrefixFrom(ip, bits).Masked()
		return append(out, service.AddrEntry{Kind: service.AddrNet, Prefix: p, Text: text, Src: src}), true
	case strings.IndexByte(text, ':') >= 0:
		ip, err := netip.ParseAddr(text)
		if err != nil || ip.Zone() != "" {
			return bad("failed to parse " + text)
		}
		return append(out, service.AddrEntry{Kind: service.AddrNumeric, Prefix: netip.PrefixFrom(ip, 128), Text: text, Src: src}), true
	case isDigitsDots(text):
		ip, ok := inetAton(text)
		if !ok {
			return bad("failed to parse " + text)
		}
		return append(out, service.AddrEntry{Kind: service.AddrNumeric, Prefix: netip.PrefixFrom(ip, implicitBits(ip)), Text: text, Src: src}), true
	case text[0] == '.':
		if len(text) < 2 || !validHostName(text[1:]) {
			return bad("failed to parse " + text)
		}
		return append(out, service.AddrEntry{Kind: service.AddrDomain, Name: strings.ToLower(text), Text: text, Src: src}), true
	}
	if nw, ok := e.l.sys.Network(text); ok {
		if p, ok := classfulNet(nw); ok {
			return append(out, service.AddrEntry{Kind: service.AddrNet, Prefix: p, Text: text, Src: src}), true
		}
	}
	if !validHostName(text) {
		return bad("failed to parse " + text)
	}
	if _, err := e.l.lookupHost(text); err != nil {
		// xinetd drops the word; keeping it is the same for only_from
		// (nobody matches a name that does not resolve) and safer for
		// no_access (the host stays refused if it comes back).
		e.warnAt(a, i, WarnUnresolved, fmt.Sprintf("host name %s does not resolve now; kept, and matched against the client's reverse name", text))
	}
	return append(out, service.AddrEntry{Kind: service.AddrHost, Name: strings.ToLower(text), Text: text, Src: src}), true
}

// factorised expands a.b.{x,y,z} into one prefix per element, the mask
// covering the octets written.
func (e *entry) factorised(out []service.AddrEntry, a *attrLine, i int, w word, src service.Source) ([]service.AddrEntry, bool) {
	text := w.text
	bad := func(msg string) ([]service.AddrEntry, bool) {
		e.valueErr(a, i, msg)
		return out, false
	}
	open := strings.IndexByte(text, '{')
	if !strings.HasSuffix(text, "}") || strings.Count(text, "{") != 1 || strings.Count(text, "}") != 1 {
		return bad("Bad address: " + text)
	}
	head, body := text[:open], text[open+1:len(text)-1]
	var octets []byte
	if head != "" {
		if !strings.HasSuffix(head, ".") {
			return bad("Bad address: " + text)
		}
		for _, part := range strings.Split(head[:len(head)-1], ".") {
			n, err := strconv.Atoi(part)
			if err != nil || !allDigits(part) || n > 255 {
				return bad("Bad address: " + text)
			}
			octets = append(octets, byte(n))
		}
		if len(octets) > 3 {
			return bad("Bad address: " + text)
		}
	}
	for _, el := range strings.Split(body, ",") {
		if el == "" {
			return bad("Bad address: " + text + ". Consecutive commas")
		}
		n, err := strconv.Atoi(el)
		if err != nil || !allDigits(el) || n > 255 {
			return bad("Bad address: " + text)
		}
		var b [4]byte
		copy(b[:], octets)
		b[len(octets)] = byte(n)
		p := netip.PrefixFrom(netip.AddrFrom4(b), 8*(len(octets)+1))
		out = append(out, service.AddrEntry{Kind: service.AddrNet, Prefix: p, Text: text, Src: src})
	}
	return out, true
}

func isDigitsDots(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return s != ""
}

// inetAton parses the numeric IPv4 forms inet_aton(3) accepts with
// decimal and octal parts: a, a.b, a.b.c, a.b.c.d.
func inetAton(s string) (netip.Addr, bool) {
	// Split by hand into a fixed array: this runs for every address of
	// every only_from line.
	var buf [4]uint64
	n := 0
	for more := true; more; n++ {
		p := s
		if i := strings.IndexByte(s, '.'); i >= 0 {
			p, s = s[:i], s[i+1:]
		} else {
			more = false
		}
		if n == len(buf) || p == "" || !allDigits(p) {
			return netip.Addr{}, false
		}
		base := 10
		if len(p) > 1 && p[0] == '0' {
			base = 8
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		buf[n] = v
	}
	vals := buf[:n]
	var v uint64
	last := len(vals) - 1
	for i := 0; i < last; i++ {
		if vals[i] > 255 {
			return netip.Addr{}, false
		}
		v |= vals[i] << (24 - 8*uint(i))
	}
	if vals[last] >= 1<<(32-8*uint(last)) {
		return netip.Addr{}, false
	}
	v |= vals[last]
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// implicitBits is xinetd's implicit IPv4 mask: trailing zero octets are
// wildcards (10.0.0.0 is 10/8, 0.0.0.0 matches everything).
func implicitBits(ip netip.Addr) int {
	b := ip.As4()
	bits := 32
	for bits > 0 && b[bits/8-1] == 0 {
		bits -= 8
	}
	return bits
}

// classfulNet turns an /etc/networks number ("127", "10.1", "192.168.1.0")
// into a prefix with the classful mask, widened to the octets written.
func classfulNet(s string) (netip.Prefix, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Prefix{}, false
	}
	var b [4]byte
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 {
			return netip.Prefix{}, false
		}
		b[i] = byte(n)
	}
	bits := 32
	switch {
	case b[0] < 128:
		bits = 8
	case b[0] < 192:
		bits = 16
	case b[0] < 224:
		bits = 24
	}
	// A number written with more octets than its class ("10.1") keeps
	// them; trailing zero octets do not count.
	for i := 3; i >= 0; i-- {
		if b[i] != 0 {
			bits = max(bits, 8*(i+1))
			break
		}
	}
	return netip.PrefixFrom(netip.AddrFrom4(b), bits).Masked(), true
}

// validHostName accepts the characters of DNS names (plus '_', which
// /etc/hosts entries sometimes use).
func validHostName(s string) bool {
	if s == "" || len(s) > 253 || s[0] == '-' || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return !strings.Contains(s, "..")
}

// serverCheck caches the verdict on one server path.
type serverCheck struct {
	code string // "" when fine
	msg  string
	warn string
}

// checkServer applies xinetd's parse-time test (the server must be an
// executable file) and, when running as root, refuses servers that a
// non-root user could replace.
func (e *entry) checkServer(a *attrLine, p string) bool {
	c := e.l.serverVerdict(p)
	if c.warn != "" {
		e.warnAt(a, 0, WarnRelativePath, c.warn)
	}
	if c.code != "" {
		e.errAt(a, 0, c.code, c.msg)
		return false
	}
	return true
}

// serverVerdict is judgeServer once per Load for each path.
func (l *loader) serverVerdict(p string) serverCheck {
	fl := flightOf(l.mu, func(c *cacheLocks) *flight { return &c.servers })
	return cached(fl, l.servers, p, func() serverCheck { return l.judgeServer(p) })
}

func (l *loader) judgeServer(p string) serverCheck {
	var c serverCheck
	if !filepath.IsAbs(p) {
		if l.opt.CheckOwnership {
			return serverCheck{code: CodeOwnership, msg: "server " + p + " is not an absolute path; refused when running as root"}
		}
		c.warn = "server " + p + " is a relative path; it is resolved against the daemon's working directory"
	}
	fi, err := os.Stat(p)
	if err != nil {
		c.code, c.msg = CodeServer, fmt.Sprintf("Unable to stat: %s (%s)", p, errText(err))
		return c
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		c.code, c.msg = CodeServer, "Server "+p+" is not executable"
		return c
	}
	// Who may own it depends on the service's user, known only when the
	// entry is complete: checkServerOwner (ownership.go).
	return c
}
