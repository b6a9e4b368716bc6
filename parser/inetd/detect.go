package inetd

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Detection says which dialect a file is read with and why. Detect
// fills it from the file's own text; Parse reports it as an
// N-DIALECT-CHOSEN notice and, when some signals point elsewhere, a
// W-DIALECT-SIGNALS warning.
type Detection struct {
	// Dialect is the dialect chosen (one of Dialects).
	Dialect string `json:"dialect"`
	// Explicit is set when the caller chose the dialect (-dialect).
	Explicit bool `json:"explicit,omitempty"`
	// For lists the signals that fit the chosen dialect, Against those
	// that do not, each as "what (line N)".
	For     []string `json:"for,omitempty"`
	Against []string `json:"against,omitempty"`
	// Line is the first line of the strongest signal for the choice (0
	// when nothing in the file decided).
	Line int `json:"line,omitempty"`
}

// Reason is the human-readable reason for the choice, for messages and
// xconv's header.
func (d Detection) Reason() string {
	switch {
	case d.Explicit:
		return "chosen with -dialect"
	case len(d.For) == 0:
		return "nothing in the file names a dialect; " + DefaultDialect + " is the default"
	}
	return strings.Join(d.For, "; ")
}

// signal is one kind of evidence about the dialect, with the dialects it
// fits, how strongly it decides, and where it was first seen.
type signal struct {
	what   string
	fits   []string
	weight int
	line   int
	count  int
}

// The preference among dialects that fit the evidence equally well:
// on a Linux machine, an inetd.conf that says nothing was written for
// Debian's openbsd-inetd; among the BSDs, OpenBSD's reading is the
// common ground (IPv4 plain tcp, per-minute rates).
var dialectPreference = []string{"linux", "openbsd", "freebsd", "netbsd"}

var rcsHeader = regexp.MustCompile(`\$(FreeBSD|OpenBSD|NetBSD)[:$]`)

// Detect recognises the dialect of an inetd.conf from its text: the
// version-control headers the BSDs ship their files with ($FreeBSD$,
// $OpenBSD: ...$, $NetBSD: ...$), then the forms only some dialects have
// (FreeBSD's /max-child limits and tcp46, the .N and :N rates, listen
// address prefixes, NetBSD's key=value notation, .include and accept
// options, FreeBSD login classes and unix-socket prefixes, Debian's
// #<off># marks), and a service written both as plain tcp and as tcp6,
// which only makes sense where plain tcp is IPv4 only. The dialect the
// most evidence fits wins; ties go to linux, then openbsd, freebsd,
// netbsd. A file with no evidence is DefaultDialect.
func Detect(data []byte) Detection { return decide(signals(data)) }

// signals collects the evidence of Detect, by kind.
func signals(data []byte) map[string]*signal {
	sigs := map[string]*signal{}
	note := func(key, what string, line, weight int, fits ...string) {
		if s := sigs[key]; s != nil {
			s.count++
			return
		}
		sigs[key] = &signal{what: what, fits: fits, weight: weight, line: line, count: 1}
	}
	type famKey struct{ name, sock, base string }
	plain := map[famKey]int{} // service written with plain tcp/udp -> line
	six := map[famKey]int{}   // ... with tcp6/udp6
	text := string(data)
	n := 0
	for len(text) > 0 && n < 100_000 {
		var ln string
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			ln, text = text[:i], text[i+1:]
		} else {
			ln, text = text, ""
		}
		n++
		ln = strings.TrimRight(ln, "\r")
		if len(ln) > MaxLine {
			continue
		}
		if strings.HasPrefix(ln, "#") {
			switch {
			case strings.HasPrefix(ln, "#<off>#"):
				note("debian-off", "Debian's #<off># marks", n, 1, "linux")
			case strings.HasPrefix(ln, "#@"):
				note("ipsec", "#@ IPsec policy lines", n, 1, "freebsd", "netbsd")
			}
			if m := rcsHeader.FindStringSubmatch(ln); m != nil {
				d := strings.ToLower(m[1])
				note("rcs-"+d, "$"+m[1]+"$ header", n, 10, d)
			}
			continue
		}
		if ln == "" || isBlank(ln[0]) {
			continue
		}
		if strings.HasPrefix(ln, ".include") {
			note("include", ".include lines", n, 3, "netbsd")
			continue
		}
		f := strings.Fields(ln)
		if len(f) == 1 && strings.HasSuffix(f[0], ":") {
			note("addr-line", "default-address lines", n, 2, "openbsd", "netbsd", "linux")
			continue
		}
		if len(f) >= 2 && (f[1] == "on" || f[1] == "off") {
			note("keyvalue", "key=value notation", n, 3, "netbsd")
			continue
		}
		if len(f) < 5 {
			continue
		}
		svc, sock, proto, wait, user := f[0], strings.ToLower(f[1]), strings.ToLower(f[2]), strings.ToLower(f[3]), f[4]
		base := proto
		if i := strings.IndexByte(base, ','); i >= 0 {
			base = base[:i]
			note("bufopts", "sndbuf/rcvbuf options", n, 1, "netbsd", "linux")
		}
		base = strings.TrimPrefix(base, "rpc/")
		if base == "unix" {
			if strings.HasPrefix(svc, ":") {
				note("unix-prefix", ":user:group:mode: unix-socket prefixes", n, 2, "freebsd")
			}
		} else if i := addrSplit(svc); i > 0 {
			note("addr-prefix", "listen-address prefixes", n, 2, "openbsd", "netbsd", "linux")
			svc = svc[i+1:]
		}
		if strings.ContainsAny(sock, ",:") {
			note("sock-opts", "accept-max or accept-filter after the socket type", n, 2, "netbsd")
			sock = sock[:strings.IndexAny(sock, ",:")]
		}
		switch base {
		case "tcp46", "udp46":
			note("46", "tcp46/udp46", n, 2, "freebsd", "linux")
		case "tcp", "udp":
			k := famKey{svc, sock, base}
			if _, ok := plain[k]; !ok {
				plain[k] = n
			}
		case "tcp6", "udp6":
			k := famKey{svc, sock, base[:3]}
			if _, ok := six[k]; !ok {
				six[k] = n
			}
		}
		w := strings.TrimPrefix(strings.TrimPrefix(wait, "no"), "wait")
		if strings.HasPrefix(wait, "wait") || strings.HasPrefix(wait, "nowait") {
			switch {
			case strings.HasPrefix(w, "/"):
				note("slash", "/max-child limits after wait", n, 3, "freebsd")
			case strings.HasPrefix(w, "."):
				note("dot", ".N rates after wait", n, 2, "openbsd", "netbsd", "linux")
			case strings.HasPrefix(w, ":"):
				note("colon", ":N rates after wait", n, 3, "netbsd")
			}
		}
		if strings.Contains(user, "/") {
			note("class", "user/login-class", n, 2, "freebsd")
		}
	}
	// A service on both plain tcp and tcp6: two sockets where plain tcp
	// is IPv4, a clash where it is IPv4 and IPv6 (Debian).
	var pairLines []int
	var pairName string
	for k, l6 := range six {
		if l4, ok := plain[k]; ok {
			first := min(l4, l6)
			if pairLines == nil || first < pairLines[0] {
				pairLines, pairName = []int{first, max(l4, l6)}, k.name
			}
		}
	}
	if pairLines != nil {
		sigs["pair"] = &signal{what: fmt.Sprintf("%s on both plain tcp/udp and tcp6/udp6 (lines %d and %d: plain tcp is IPv4 only)", pairName, pairLines[0], pairLines[1]),
			fits: []string{"freebsd", "openbsd", "netbsd"}, weight: 2, line: pairLines[0], count: 1}
	}
	return sigs
}

// decide scores the dialects by the evidence.
func decide(sigs map[string]*signal) Detection {
	if len(sigs) == 0 {
		return Detection{Dialect: DefaultDialect}
	}
	score := map[string]int{}
	for _, s := range sigs {
		for _, d := range s.fits {
			score[d] += s.weight
		}
	}
	best := ""
	for _, d := range dialectPreference {
		if best == "" || score[d] > score[best] {
			best = d
		}
	}
	return describeDialect(best, sigs, false)
}

// describe lists the evidence for and against dialect d.
func describeDialect(d string, sigs map[string]*signal, explicit bool) Detection {
	det := Detection{Dialect: d, Explicit: explicit}
	list := make([]*signal, 0, len(sigs))
	for _, s := range sigs {
		list = append(list, s)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].weight != list[j].weight {
			return list[i].weight > list[j].weight
		}
		if list[i].line != list[j].line {
			return list[i].line < list[j].line
		}
		return list[i].what < list[j].what
	})
	for _, s := range list {
		txt := s.what
		if !strings.Contains(txt, "(line") {
			txt += fmt.Sprintf(" (line %d", s.line)
			if s.count > 1 {
				txt += fmt.Sprintf(" and %d more", s.count-1)
			}
			txt += ")"
		}
		fits := false
		for _, f := range s.fits {
			fits = fits || f == d
		}
		if fits {
			det.For = append(det.For, txt)
			if det.Line == 0 {
				det.Line = s.line
			}
		} else {
			det.Against = append(det.Against, txt+" fits "+strings.Join(s.fits, ", "))
		}
	}
	return det
}

// detectFor is the detection Parse reports: the file's own evidence, or
// the caller's choice described against that evidence.
func detectFor(data []byte, chosen string) Detection {
	sigs := signals(data)
	if chosen == "" {
		return decide(sigs)
	}
	return describeDialect(chosen, sigs, true)
}
