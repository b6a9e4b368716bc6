package parser

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/gxinetd/gxinetd/internal/service"
)

// attrKind is xinetd's value-count class (src/parse.c).
type attrKind int

const (
	kindFixed attrKind = iota // exactly n words, `=` only, once per entry
	kindAny                   // any number of words, `=` only, once per entry
	kindList                  // `=`, `+=`, `-=`, many times
)

// attrSpec is one row of the attribute table.
type attrSpec struct {
	name       string
	kind       attrKind
	n          int  // kindFixed: the number of words
	atLeastOne bool // kindAny: at least one word
	inService  bool
	inDefaults bool
	// listInDefaults and onceInDefaults describe log_type, which xinetd
	// declares list-kind in defaults but allows only once.
	listInDefaults bool
	onceInDefaults bool
	// handle parses the values into the entry; false means it rejected them.
	handle func(e *entry, a *attrLine) bool
	// gxinetd marks attributes xinetd 2.3.15 does not have.
	gxinetd bool
	// bit identifies the attribute in entry.set (1-based; 0 = not yet
	// numbered).
	bit int
}

// attrSet is a set of attributes by attrSpec.bit. Four words leave room
// for every attribute xinetd has and gxinetd's own, with space to grow
// (one word overflowed once the unix-socket and rate attributes came).
type attrSet [4]uint64

func (s *attrSet) has(bit int) bool { return s[bit>>6]&(1<<(bit&63)) != 0 }
func (s *attrSet) add(bit int)      { s[bit>>6] |= 1 << (bit & 63) }

var (
	attrSpecs         map[string]*attrSpec
	serviceAttrNames  []string
	defaultsAttrNames []string
)

// obsoleteAttrs existed in other xinetd versions; a config written for
// them still loads.
var obsoleteAttrs = map[string]bool{"mdns": true}

func init() {
	const (
		S = 1 << iota
		D
		X // beyond xinetd
	)
	add := func(name string, kind attrKind, n int, where int, h func(*entry, *attrLine) bool) *attrSpec {
		sp := &attrSpec{name: name, kind: kind, n: n, inService: where&S != 0, inDefaults: where&D != 0, gxinetd: where&X != 0, handle: h}
		if kind == kindAny {
			sp.n, sp.atLeastOne = 0, true
		}
		if kind == kindList {
			sp.n = 0
		}
		attrSpecs[name] = sp
		return sp
	}
	attrSpecs = map[string]*attrSpec{}
	add("id", kindFixed, 1, S, hID)
	add("type", kindAny, 0, S, hType)
	add("flags", kindAny, 0, S, hFlags)
	add("socket_type", kindFixed, 1, S, hSocketType)
	add("protocol", kindFixed, 1, S, hProtocol)
	add("wait", kindFixed, 1, S, hWait)
	add("user", kindFixed, 1, S, hUser)
	add("group", kindFixed, 1, S, hGroup)
	add("server", kindFixed, 1, S, hServer)
	add("server_args", kindAny, 0, S, hServerArgs)
	add("instances", kindFixed, 1, S|D, hInstances)
	add("per_source", kindFixed, 1, S|D, hPerSource)
	add("cps", kindFixed, 2, S|D, hCPS)
	add("max_load", kindFixed, 1, S|D, hMaxLoad)
	add("nice", kindFixed, 1, S, hNice)
	add("umask", kindFixed, 1, S|D, hUmask)
	add("groups", kindFixed, 1, S|D, hGroups)
	lt := add("log_type", kindAny, 0, S|D, hLogType)
	lt.listInDefaults, lt.onceInDefaults = true, true
	add("log_on_success", kindList, 0, S|D, hLogOnSuccess)
	add("log_on_failure", kindList, 0, S|D, hLogOnFailure)
	add("only_from", kindList, 0, S|D, hOnlyFrom)
	add("no_access", kindList, 0, S|D, hNoAccess)
	add("access_times", kindAny, 0, S, hAccessTimes)
	add("rpc_version", kindFixed, 1, S, hRPCVersion)
	add("rpc_number", kindFixed, 1, S, hRPCNumber)
	add("env", kindList, 0, S, hEnv)
	add("passenv", kindList, 0, S|D, hPassEnv)
	add("port", kindFixed, 1, S, hPort)
	add("redirect", kindFixed, 2, S, hRedirect)
	attrSpecs["interface"] = add("bind", kindFixed, 1, S|D, hBind)
	add("banner", kindFixed, 1, S|D, hBanner)
	add("banner_success", kindFixed, 1, S|D, hBannerSuccess)
	add("banner_fail", kindFixed, 1, S|D, hBannerFail)
	add("disable", kindFixed, 1, S, hDisable)
	add("v6only", kindFixed, 1, S|D, hV6Only)
	add("deny_time", kindFixed, 1, S, hDenyTime)
	for _, r := range rlimitNames {
		add(r.attr, kindFixed, 1, S, hRlimit)
	}
	add("libwrap", kindFixed, 1, S, hLibwrap)
	add("enabled", kindList, 0, D, hEnabled)
	add("disabled", kindList, 0, D, hDisabled)
	// gxinetd's own attributes.
	add("per_source_prefix", kindFixed, 2, S|D|X, hPerSourcePrefix)
	add("redirect_source", kindFixed, 1, S|X, hRedirectSource)
	add("log_format", kindFixed, 1, S|D|X, hLogFormat)
	add("metrics", kindFixed, 1, D|X, hMetrics)
	add("metrics_only_from", kindList, 0, D|X, hMetricsOnlyFrom)
	add("backlog", kindFixed, 1, S|D|X, hBacklog)
	add("idle_timeout", kindFixed, 1, S|X, hIdleTimeout)
	add("max_bytes", kindFixed, 1, S|X, hMaxBytes)
	add("connect_timeout", kindFixed, 1, S|X, hConnectTimeout)
	add("ident_timeout", kindFixed, 1, S|D|X, hIdentTimeout)
	add("proxy_protocol", kindAny, 0, S|X, hProxyProtocol)
	add("proxy_from", kindList, 0, S|D|X, hProxyFrom)
	add("proxy_timeout", kindFixed, 1, S|D|X, hProxyTimeout)
	add("redirect_proxy_protocol", kindFixed, 1, S|X, hRedirectProxyProtocol)
	add("unix_path", kindFixed, 1, S|X, hUnixPath)
	add("unix_owner", kindFixed, 1, S|X, hUnixOwner)
	add("unix_group", kindFixed, 1, S|X, hUnixGroup)
	add("unix_mode", kindFixed, 1, S|X, hUnixMode)
	add("only_users", kindAny, 0, S|X, hOnlyUsers)
	add("only_groups", kindAny, 0, S|X, hOnlyGroups)
	add("cpm", kindFixed, 1, S|D|X, hCPM)
	add("per_source_cpm", kindFixed, 1, S|D|X, hPerSourceCPM)
	addSandboxAttrs(func(name string, kind attrKind, n int, h func(*entry, *attrLine) bool) {
		add(name, kind, n, S|D|X, h)
	})

	next := 1
	for _, name := range AttributeNames() {
		sp := attrSpecs[name]
		if sp.bit == 0 {
			if next >= len(attrSet{})*64 {
				panic("parser: too many attributes for attrSet")
			}
			sp.bit, next = next, next+1
		}
		if sp.inService {
			serviceAttrNames = append(serviceAttrNames, name)
		}
		if sp.inDefaults {
			defaultsAttrNames = append(defaultsAttrNames, name)
		}
	}
	sort.Strings(serviceAttrNames)
	sort.Strings(defaultsAttrNames)
}

// AttributeNames lists every attribute name the parser knows, sorted, for
// documentation tests and shell completion.
func AttributeNames() []string {
	out := make([]string, 0, len(attrSpecs))
	for n := range attrSpecs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// listOp is the effective operator of a list attribute: inside defaults,
// `=` adds, as in xinetd.
func (e *entry) listOp(a *attrLine) byte {
	if e.isDefaults && a.op == '=' {
		return '+'
	}
	return a.op
}

func yesNo(w string) (bool, bool) {
	switch {
	case strings.EqualFold(w, "yes"):
		return true, true
	case strings.EqualFold(w, "no"):
		return false, true
	}
	return false, false
}

// atoi parses a plain decimal integer (optional sign), refusing the
// blanks, signs in the middle and overflow that strconv would also refuse.
func atoi(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func hID(e *entry, a *attrLine) bool {
	e.svc.ID = a.values[0].text
	return true
}

func hType(e *entry, a *attrLine) bool {
	var t service.TypeFlags
	ok := true
	for i, w := range a.values {
		if strings.EqualFold(w.text, "SPECIAL") {
			e.warnAt(a, i, WarnObsolete, "type SPECIAL is an internal marker of xinetd; ignored")
			continue
		}
		b, good := service.ParseType(w.text)
		if !good {
			e.valueErr(a, i, "Bad service type: "+w.text+didYouMean(w.text, []string{"RPC", "INTERNAL", "UNLISTED", "TCPMUX", "TCPMUXPLUS"}))
			ok = false
			continue
		}
		t |= b
	}
	e.svc.Type = t
	return ok
}

func hFlags(e *entry, a *attrLine) bool {
	var f service.Flags
	ok := true
	for i, w := range a.values {
		b, good := service.ParseFlag(w.text)
		if !good {
			e.valueErr(a, i, "Bad service flag: "+w.text+didYouMean(w.text, service.FlagNames()))
			ok = false
			continue
		}
		f |= b
	}
	e.svc.Flags = f
	if f.Has(service.FlagNameInArgs) {
		e.flagsLine = a.line
		if e.argsLine > 0 {
			e.warnAt(a, -1, WarnArgsOrder, "server_args comes before flags = NAMEINARGS; accepted, but xinetd 2.3.15 would start the server with an empty argv[0]")
		}
	}
	return ok
}

func hSocketType(e *entry, a *attrLine) bool {
	t, ok := service.ParseSocketType(a.values[0].text)
	if !ok || t == service.SockRDM {
		e.valueErr(a, 0, "Bad socket type: "+a.values[0].text+didYouMean(a.values[0].text, []string{"stream", "dgram", "raw", "seqpacket"}))
		return false
	}
	e.svc.SocketType = t
	return true
}

func hProtocol(e *entry, a *attrLine) bool {
	name := strings.ToLower(a.values[0].text)
	if name == "unix" {
		// Not in /etc/protocols: the protocol of unix_path services, as
		// inetd.conf writes it.
		e.svc.Protocol, e.svc.ProtoNum = name, 0
		return true
	}
	n, ok := e.l.sys.Protocol(name)
	if !ok {
		e.valueErr(a, 0, "Protocol "+a.values[0].text+" not in /etc/protocols")
		return false
	}
	e.svc.Protocol, e.svc.ProtoNum = name, n
	return true
}

func hWait(e *entry, a *attrLine) bool {
	v, ok := yesNo(a.values[0].text)
	if !ok {
		e.valueErr(a, 0, "Bad value for wait: "+a.values[0].text)
		return false
	}
	e.svc.Wait = v
	return true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func hUser(e *entry, a *attrLine) bool {
	c, ok := e.cred(a, "user", e.l.sys.UID)
	e.svc.User = c
	return ok
}

func hGroup(e *entry, a *attrLine) bool {
	c, ok := e.cred(a, "group", e.l.sys.GID)
	e.svc.Group = c
	return ok
}

// cred resolves a user or group word: all digits is the number itself,
// anything else a name looked up in the system database. The messages are
// xinetd's.
func (e *entry) cred(a *attrLine, what string, lookup func(string) (int, bool)) (*service.Cred, bool) {
	w := a.values[0].text
	if allDigits(w) {
		n, err := strconv.ParseUint(w, 10, 31)
		if err != nil {
			e.valueErr(a, 0, "Error parsing "+what+" as a number: "+w)
			return nil, false
		}
		return &service.Cred{Name: w, ID: int(n)}, true
	}
	id, ok := lookup(w)
	if !ok {
		e.valueErr(a, 0, "Unknown "+what+": "+w)
		return nil, false
	}
	return &service.Cred{Name: w, ID: id}, true
}

func hServer(e *entry, a *attrLine) bool {
	p := a.values[0].text
	e.svc.Server = p
	e.serverSrc = a.src(e.file)
	if e.kept != nil {
		e.kept.serverCol = a.values[0].col
	}
	if e.chrootSoFar() != "" && e.kept != nil {
		e.kept.serverDeferred = true // judged inside the chroot by checkSandbox
		return true
	}
	return e.checkServer(a, p)
}

func hServerArgs(e *entry, a *attrLine) bool {
	args := make([]string, len(a.values))
	for i, w := range a.values {
		args[i] = w.text
	}
	e.svc.ServerArgs = args
	e.argsLine = a.line
	return true
}

// limitValue parses instances/per_source: a count or UNLIMITED.
func limitValue(w string) (service.Limit, bool) {
	if strings.EqualFold(w, "UNLIMITED") {
		return service.Unlimited, true
	}
	n, ok := atoi(w)
	if !ok || n < 0 {
		return 0, false
	}
	return service.Limit(n), true
}

func hInstances(e *entry, a *attrLine) bool {
	v, ok := limitValue(a.values[0].text)
	if !ok {
		e.valueErr(a, 0, "Number of instances is invalid: "+a.values[0].text)
		return false
	}
	e.svc.Instances = v
	return true
}

func hPerSource(e *entry, a *attrLine) bool {
	v, ok := limitValue(a.values[0].text)
	if !ok {
		e.valueErr(a, 0, "Number of per source instances is invalid: "+a.values[0].text)
		return false
	}
	e.svc.PerSource = v
	return true
}

func hCPS(e *entry, a *attrLine) bool {
	rate, err1 := strconv.ParseUint(a.values[0].text, 10, 31)
	if err1 != nil {
		e.valueErr(a, 0, "cps argument not a number: "+a.values[0].text)
		return false
	}
	wait, err2 := strconv.ParseUint(a.values[1].text, 10, 31)
	if err2 != nil {
		e.valueErr(a, 1, "cps time argument not a number: "+a.values[1].text)
		return false
	}
	e.svc.CPS = service.CPS{Rate: int(rate), Wait: int(wait)}
	return true
}

func hMaxLoad(e *entry, a *attrLine) bool {
	w := a.values[0].text
	v, err := strconv.ParseFloat(w, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		e.valueErr(a, 0, "error reading max_load argument: "+w)
		return false
	}
	if v <= 0 {
		e.valueErr(a, 0, "error parsing max_load argument: "+w+" (must be above 0)")
		return false
	}
	e.svc.MaxLoad = v
	return true
}

func hNice(e *entry, a *attrLine) bool {
	n, ok := atoi(a.values[0].text)
	if !ok || n < -20 || n > 19 {
		e.valueErr(a, 0, "Error parsing: "+a.values[0].text+" (nice takes -20 to 19)")
		return false
	}
	e.svc.Nice = &n
	return true
}

func hUmask(e *entry, a *attrLine) bool {
	v, err := strconv.ParseUint(a.values[0].text, 8, 32)
	if err != nil || v > 0o777 {
		e.valueErr(a, 0, "umask argument is invalid: "+a.values[0].text+" (octal 0 to 777)")
		return false
	}
	u := uint32(v)
	e.svc.Umask = &u
	return true
}

func hGroups(e *entry, a *attrLine) bool {
	v, ok := yesNo(a.values[0].text)
	if !ok {
		e.valueErr(a, 0, "Bad value for groups: "+a.values[0].text)
		return false
	}
	e.svc.Groups = v
	return true
}

// sizeValue parses N[k|K|m|M] (also g|G) into bytes.
func sizeValue(w string) (uint64, bool) {
	mult := uint64(1)
	if n := len(w); n > 1 {
		switch w[n-1] {
		case 'k', 'K':
			mult, w = 1<<10, w[:n-1]
		case 'm', 'M':
			mult, w = 1<<20, w[:n-1]
		case 'g', 'G':
			mult, w = 1<<30, w[:n-1]
		}
	}
	if !allDigits(w) {
		return 0, false
	}
	v, err := strconv.ParseUint(w, 10, 64)
	if err != nil || v > math.MaxInt64/mult {
		return 0, false
	}
	return v * mult, true
}

func hLogType(e *entry, a *attrLine) bool {
	lt := service.LogType{Src: a.src(e.file)}
	kind := a.values[0].text
	switch {
	case strings.EqualFold(kind, "SYSLOG"):
		if len(a.values) < 2 || len(a.values) > 3 {
			e.errAt(a, -1, CodeAttrCount, "log_type SYSLOG: wrong number of arguments (SYSLOG facility [level])")
			return false
		}
		lt.Kind = service.LogSyslog
		fac := strings.ToLower(a.values[1].text)
		if !contains(service.SyslogFacilities, fac) {
			e.valueErr(a, 1, "Unknown syslog facility: "+a.values[1].text+didYouMean(fac, service.SyslogFacilities))
			return false
		}
		lt.Facility, lt.Level = fac, "info"
		if len(a.values) == 3 {
			lvl := strings.ToLower(a.values[2].text)
			if !contains(service.SyslogLevels, lvl) {
				e.valueErr(a, 2, "Unknown syslog level: "+a.values[2].text+didYouMean(lvl, service.SyslogLevels))
				return false
			}
			lt.Level = lvl
		}
	case strings.EqualFold(kind, "FILE"):
		if len(a.values) < 2 || len(a.values) > 4 {
			e.errAt(a, -1, CodeAttrCount, "log_type FILE: wrong number of arguments (FILE path [soft [hard]])")
			return false
		}
		lt.Kind = service.LogFile
		lt.Path = e.filePath(a.values[1].text)
		if !e.checkLogFile(a, lt.Path) {
			return false
		}
		if len(a.values) >= 3 {
			soft, ok := sizeValue(a.values[2].text)
			if !ok {
				e.valueErr(a, 2, "soft limit is invalid: "+a.values[2].text)
				return false
			}
			lt.Soft = int64(soft)
			// xinetd's default headroom: 1% of the soft limit, at least
			// 5 KiB and at most 20 KiB.
			lt.Hard = lt.Soft + max(5<<10, min(lt.Soft/100, 20<<10))
		}
		if len(a.values) == 4 {
			hard, ok := sizeValue(a.values[3].text)
			if !ok {
				e.valueErr(a, 3, "hard limit is invalid: "+a.values[3].text)
				return false
			}
			if int64(hard) < lt.Soft {
				e.valueErr(a, 3, fmt.Sprintf("hard limit (%d) is less than soft limit (%d)", hard, lt.Soft))
				return false
			}
			lt.Hard = int64(hard)
		}
	default:
		e.valueErr(a, 0, "Unknown log type: "+kind+" (SYSLOG or FILE)")
		return false
	}
	e.svc.LogType = lt
	return true
}

func contains(list []string, w string) bool {
	for _, x := range list {
		if x == w {
			return true
		}
	}
	return false
}

func hLogOnSuccess(e *entry, a *attrLine) bool {
	return bitsOp(e, a, &e.svc.LogOnSuccess, service.ParseLogSuccess, "log_on_success",
		[]string{"PID", "HOST", "USERID", "EXIT", "DURATION", "TRAFFIC"})
}

func hLogOnFailure(e *entry, a *attrLine) bool {
	return bitsOp(e, a, &e.svc.LogOnFailure, service.ParseLogFailure, "log_on_failure",
		[]string{"HOST", "ATTEMPT", "USERID"})
}

// bitsOp applies one line of a flag-set attribute (log_on_success,
// log_on_failure) with its operator; a bad word rejects the line.
func bitsOp[T ~uint32](e *entry, a *attrLine, dst *T, parse func(string) (T, bool), attr string, names []string) bool {
	var v T
	for i, w := range a.values {
		b, ok := parse(w.text)
		if !ok {
			e.valueErr(a, i, "Bad "+attr+" flag: "+w.text+didYouMean(w.text, names))
			return false
		}
		v |= b
	}
	switch e.listOp(a) {
	case '=':
		*dst = v
	case '+':
		*dst |= v
	case '-':
		*dst &^= v
	}
	return true
}

func hOnlyFrom(e *entry, a *attrLine) bool { return e.addrListOp(a, &e.svc.OnlyFrom) }
func hNoAccess(e *entry, a *attrLine) bool { return e.addrListOp(a, &e.svc.NoAccess) }
func hMetricsOnlyFrom(e *entry, a *attrLine) bool {
	return e.addrListOp(a, &e.l.defs.metricsOnlyFrom)
}

// addrListOp applies one only_from/no_access line.
func (e *entry) addrListOp(a *attrLine, list *service.AddrList) bool {
	add := make([]service.AddrEntry, 0, len(a.values))
	ok := true
	for i, w := range a.values {
		var good bool
		if add, good = e.parseAddr(add, a, i, w); !good {
			ok = false
		}
	}
	if !ok {
		return false
	}
	switch e.listOp(a) {
	case '=':
		list.Set = true
		list.Entries = add
	case '+':
		list.Set = true
		list.Entries = append(list.Entries, add...)
		if list.Entries == nil {
			list.Entries = []service.AddrEntry{}
		}
	case '-':
		// A set keeps `-=` linear however long both lists are.
		drop := make(map[addrKey]bool, len(add))
		for _, r := range add {
			drop[keyOf(r)] = true
		}
		kept := list.Entries[:0]
		for _, x := range list.Entries {
			if !drop[keyOf(x)] {
				kept = append(kept, x)
			}
		}
		list.Entries = kept
	}
	return true
}

// addrKey identifies an entry for `-=`: the same name for host and
// domain entries, the same prefix for numeric and network ones (so
// 10.0.0.0 removes 10.0.0.0/8).
type addrKey struct {
	name   string
	prefix netip.Prefix
}

func keyOf(e service.AddrEntry) addrKey {
	switch e.Kind {
	case service.AddrHost, service.AddrDomain:
		return addrKey{name: e.Name}
	}
	return addrKey{prefix: e.Prefix}
}

func hAccessTimes(e *entry, a *attrLine) bool {
	out := make([]service.TimeRange, 0, len(a.values))
	for i, w := range a.values {
		r, ok := parseTimeRange(w.text)
		if !ok {
			e.valueErr(a, i, "invalid time interval: "+w.text+" (H:MM-H:MM, hours 0-23, end may be 24:00)")
			return false
		}
		out = append(out, r)
	}
	e.svc.AccessTimes = out
	return true
}

// parseTimeRange parses H:M-H:M. Beyond xinetd, the end may be 24:00 and
// an interval may wrap past midnight (22:00-06:00).
func parseTimeRange(s string) (service.TimeRange, bool) {
	dash := strings.IndexByte(s, '-')
	if dash < 0 {
		return service.TimeRange{}, false
	}
	start, ok1 := parseClock(s[:dash], false)
	end, ok2 := parseClock(s[dash+1:], true)
	if !ok1 || !ok2 || start == end {
		return service.TimeRange{}, false
	}
	return service.TimeRange{Start: start, End: end}, true
}

func parseClock(s string, isEnd bool) (int, bool) {
	colon := strings.IndexByte(s, ':')
	if colon < 1 || colon > 2 || len(s)-colon-1 < 1 || len(s)-colon-1 > 2 {
		return 0, false
	}
	h, m := s[:colon], s[colon+1:]
	if !allDigits(h) || !allDigits(m) {
		return 0, false
	}
	hh, _ := strconv.Atoi(h)
	mm, _ := strconv.Atoi(m)
	if mm > 59 {
		return 0, false
	}
	if hh == 24 && mm == 0 && isEnd {
		return 24 * 60, true
	}
	if hh > 23 {
		return 0, false
	}
	return hh*60 + mm, true
}

func hRPCVersion(e *entry, a *attrLine) bool {
	w := a.values[0].text
	lo, hi := w, w
	if i := strings.IndexByte(w, '-'); i >= 0 {
		lo, hi = w[:i], w[i+1:]
	}
	l, err1 := strconv.ParseUint(lo, 10, 31)
	h, err2 := strconv.ParseUint(hi, 10, 31)
	if err1 != nil || err2 != nil || h < l {
		e.valueErr(a, 0, "bad version range: "+w)
		return false
	}
	e.svc.RPCLow, e.svc.RPCHigh = int(l), int(h)
	return true
}

func hRPCNumber(e *entry, a *attrLine) bool {
	n, err := strconv.ParseUint(a.values[0].text, 10, 31)
	if err != nil {
		e.valueErr(a, 0, "Error parsing: "+a.values[0].text+" (rpc_number takes a program number)")
		return false
	}
	e.svc.RPCNumber = int(n)
	return true
}

func hEnv(e *entry, a *attrLine) bool {
	if a.op == '-' {
		e.errAt(a, -1, CodeOperator, "operator '-=' not supported for env attribute")
		return false
	}
	add := make([]string, 0, len(a.values))
	for i, w := range a.values {
		if strings.IndexByte(w.text, '=') <= 0 {
			e.valueErr(a, i, w.text+" has no '='")
			return false
		}
		add = append(add, w.text)
	}
	if a.op == '=' {
		e.svc.Env = add
	} else {
		e.svc.Env = append(e.svc.Env, add...)
	}
	return true
}

func hPassEnv(e *entry, a *attrLine) bool {
	var names []string
	for i, w := range a.values {
		if !e.l.env[w.text] && a.op != '-' {
			e.warnAt(a, i, WarnPassenv, "undefined environment variable: "+w.text+" (skipped)")
			continue
		}
		names = append(names, w.text)
	}
	switch e.listOp(a) {
	case '=':
		e.svc.PassEnv = append([]string{}, names...)
	case '+':
		e.svc.PassEnv = append(append([]string{}, e.svc.PassEnv...), names...)
	case '-':
		if e.svc.PassEnv != nil {
			drop := make(map[string]bool, len(names))
			for _, n := range names {
				drop[n] = true
			}
			kept := []string{}
			for _, x := range e.svc.PassEnv {
				if !drop[x] {
					kept = append(kept, x)
				}
			}
			e.svc.PassEnv = kept
		}
	}
	return true
}

func portValue(w string) (int, bool) {
	n, err := strconv.ParseUint(w, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, false
	}
	return int(n), true
}

func hPort(e *entry, a *attrLine) bool {
	p, ok := portValue(a.values[0].text)
	if !ok {
		e.valueErr(a, 0, "port number is invalid: "+a.values[0].text+" (1 to 65535)")
		return false
	}
	e.svc.Port = p
	return true
}

func hRedirect(e *entry, a *attrLine) bool {
	host, pw := a.values[0].text, a.values[1].text
	port, ok := portValue(pw)
	if !ok {
		if allDigits(pw) {
			e.valueErr(a, 1, "port number too large: "+pw)
			return false
		}
		if port, ok = e.l.sys.ServicePort(pw, "tcp"); !ok {
			e.valueErr(a, 1, "port number invalid: "+pw+" (not a number or a tcp service in /etc/services)")
			return false
		}
	}
	if _, err := netip.ParseAddr(host); err != nil {
		if !validHostName(host) {
			e.valueErr(a, 0, "bad address: "+host)
			return false
		}
		// The daemon resolves the name for every connection; a name that
		// does not resolve now may later, so this only warns.
		if _, err := e.l.lookupHost(host); err != nil {
			e.warnAt(a, 0, WarnUnresolved, fmt.Sprintf("redirect host %s does not resolve now (%v); it is looked up again for every connection", host, err))
		}
	}
	e.svc.Redirect = &service.Redirect{Host: host, Port: port}
	return true
}

func hRedirectSource(e *entry, a *attrLine) bool {
	ip, err := netip.ParseAddr(a.values[0].text)
	if err != nil {
		e.valueErr(a, 0, "bad address: "+a.values[0].text+" (redirect_source takes a numeric address)")
		return false
	}
	e.svc.RedirectSource = ip
	return true
}

// ifaceLike matches names such as eth0, enp3s0, wlan0, br-lan, bond0.100, lo.
var ifaceLike = regexp.MustCompile(`^(lo|[A-Za-z][A-Za-z0-9_-]*[0-9]+(\.[0-9]+)?)$`)

func hBind(e *entry, a *attrLine) bool {
	w := a.values[0].text
	b := service.Bind{Text: w}
	if IsBindTemplate(w) {
		if !e.bindTemplate(a, w) {
			return false
		}
		b.Template = w
		e.svc.Bind = b
		return true
	}
	if ip, err := netip.ParseAddr(w); err == nil {
		b.Addr = ip.Unmap()
		if ip.Is4In6() {
			b.Addr = ip
		}
		e.svc.Bind = b
		return true
	}
	name, fam := w, service.FamilyDual
	if i := strings.LastIndexByte(w, ':'); i > 0 {
		switch strings.ToLower(w[i+1:]) {
		case "ipv4":
			name, fam = w[:i], service.FamilyIPv4
		case "ipv6":
			name, fam = w[:i], service.FamilyIPv6
		default:
			e.valueErr(a, 0, "bad address given for: "+w+" (an address, a host name, or INTERFACE[:ipv4|:ipv6])")
			return false
		}
		b.Interface, b.IfaceFamily = name, fam
		if !e.l.isInterface(name) {
			if !ifaceLike.MatchString(name) {
				e.valueErr(a, 0, "bad address given for: "+w+" (no such interface)")
				return false
			}
			e.warnAt(a, 0, WarnInterface, "interface "+name+" does not exist now; the daemon binds when it appears")
		}
		e.svc.Bind = b
		return true
	}
	if e.l.isInterface(name) {
		b.Interface = name
		e.svc.Bind = b
		return true
	}
	if validHostName(name) {
		if addrs, err := e.l.lookupHost(name); err == nil {
			if len(addrs) == 1 || e.isDefaults {
				b.Addr = preferV4(addrs)
			} else {
				e.bindCands = addrs
			}
			e.svc.Bind = b
			return true
		}
	}
	if ifaceLike.MatchString(name) {
		b.Interface = name
		e.warnAt(a, 0, WarnInterface, "bind "+name+" is neither a host name that resolves nor an existing interface; kept as an interface the daemon binds when it appears")
		e.svc.Bind = b
		return true
	}
	e.valueErr(a, 0, "bad address given for: "+w+" (no addresses returned)")
	return false
}

func preferV4(addrs []netip.Addr) netip.Addr {
	for _, x := range addrs {
		if x.Is4() {
			return x
		}
	}
	return addrs[0]
}

// filePath resolves a relative banner or log file path against the
// directory of the file that names it, as include paths are. xinetd
// resolves it against its working directory, which is "/" after the first
// reload, so a relative path that worked at start silently breaks later.
func (e *entry) filePath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dirOf(e.file), p)
}

func hBanner(e *entry, a *attrLine) bool {
	e.svc.Banner = e.filePath(a.values[0].text)
	return e.checkBanner(a, e.svc.Banner)
}
func hBannerSuccess(e *entry, a *attrLine) bool {
	e.svc.BannerSuccess = e.filePath(a.values[0].text)
	return e.checkBanner(a, e.svc.BannerSuccess)
}
func hBannerFail(e *entry, a *attrLine) bool {
	e.svc.BannerFail = e.filePath(a.values[0].text)
	return e.checkBanner(a, e.svc.BannerFail)
}

func hDisable(e *entry, a *attrLine) bool {
	v, ok := yesNo(a.values[0].text)
	if !ok {
		e.valueErr(a, 0, "Bad value: "+a.values[0].text+" (disable takes yes or no)")
		return false
	}
	if v {
		// xinetd stops reading the entry here and drops it silently.
		e.stop = true
	}
	return true
}

func hV6Only(e *entry, a *attrLine) bool {
	v, ok := yesNo(a.values[0].text)
	if !ok {
		e.valueErr(a, 0, "Bad value for v6only: "+a.values[0].text)
		return false
	}
	e.svc.V6Only = &v
	return true
}

func hDenyTime(e *entry, a *attrLine) bool {
	w := a.values[0].text
	switch {
	case strings.EqualFold(w, "FOREVER"):
		e.svc.DenyTime = service.DenyForever
	case strings.EqualFold(w, "NEVER"):
		e.svc.DenyTime = service.DenyNever
	default:
		n, err := strconv.ParseUint(w, 10, 31)
		if err != nil {
			e.valueErr(a, 0, "Error parsing: "+w+" (deny_time takes minutes, FOREVER or NEVER)")
			return false
		}
		e.svc.DenyTime = int(n)
	}
	return true
}

var rlimitNames = []struct {
	attr, what string
	seconds    bool
}{
	{"rlimit_as", "Address space limit", false},
	{"rlimit_cpu", "CPU limit", true},
	{"rlimit_data", "Data limit", false},
	{"rlimit_rss", "RSS limit", false},
	{"rlimit_stack", "Stack limit", false},
	{"rlimit_files", "Max files limit", false},
}

func hRlimit(e *entry, a *attrLine) bool {
	var r service.Rlimit
	w := a.values[0].text
	var what string
	var seconds bool
	for _, x := range rlimitNames {
		if x.attr == a.key {
			what, seconds = x.what, x.seconds
		}
	}
	if strings.EqualFold(w, "UNLIMITED") {
		r = service.Rlimit{Set: true, Infinity: true}
	} else {
		var v uint64
		var ok bool
		if seconds {
			v, ok = 0, allDigits(w)
			if ok {
				n, err := strconv.ParseUint(w, 10, 63)
				v, ok = n, err == nil
			}
		} else {
			v, ok = sizeValue(w)
		}
		if !ok {
			e.valueErr(a, 0, what+" is invalid: "+w)
			return false
		}
		r = service.Rlimit{Set: true, Value: v}
	}
	rl := e.svc.Rlim.Edit()
	switch a.key {
	case "rlimit_as":
		rl.AS = r
	case "rlimit_cpu":
		rl.CPU = r
	case "rlimit_data":
		rl.Data = r
	case "rlimit_rss":
		rl.RSS = r
	case "rlimit_stack":
		rl.Stack = r
	case "rlimit_files":
		rl.Files = r
	}
	return true
}

func hLibwrap(e *entry, a *attrLine) bool { e.svc.Libwrap = a.values[0].text; return true }

func idListOp(e *entry, a *attrLine, list *[]string, set *bool) bool {
	*set = true
	switch e.listOp(a) {
	case '=':
		*list = nil
		fallthrough
	case '+':
		for _, w := range a.values {
			*list = append(*list, w.text)
		}
	case '-':
		drop := make(map[string]bool, len(a.values))
		for _, w := range a.values {
			drop[strings.ToLower(w.text)] = true
		}
		kept := (*list)[:0]
		for _, x := range *list {
			if !drop[strings.ToLower(x)] {
				kept = append(kept, x)
			}
		}
		*list = kept
	}
	return true
}

func hEnabled(e *entry, a *attrLine) bool {
	return idListOp(e, a, &e.l.defs.enabled, &e.l.defs.enabledSet)
}
func hDisabled(e *entry, a *attrLine) bool {
	return idListOp(e, a, &e.l.defs.disabled, &e.l.defs.disabledSet)
}

func hPerSourcePrefix(e *entry, a *attrLine) bool {
	v4, err1 := strconv.ParseUint(a.values[0].text, 10, 8)
	if err1 != nil || v4 > 32 {
		e.valueErr(a, 0, "per_source_prefix: IPv4 prefix length must be 0 to 32: "+a.values[0].text)
		return false
	}
	v6, err2 := strconv.ParseUint(a.values[1].text, 10, 8)
	if err2 != nil || v6 > 128 {
		e.valueErr(a, 1, "per_source_prefix: IPv6 prefix length must be 0 to 128: "+a.values[1].text)
		return false
	}
	e.svc.PerSourcePrefix4, e.svc.PerSourcePrefix6 = int32(v4), int32(v6)
	return true
}

func hLogFormat(e *entry, a *attrLine) bool {
	w := strings.ToLower(a.values[0].text)
	switch service.LogFormat(w) {
	case service.LogFormatXinetd, service.LogFormatLogfmt, service.LogFormatJSON:
		e.svc.LogFormat = service.LogFormat(w)
		return true
	}
	e.valueErr(a, 0, "Bad value for log_format: "+a.values[0].text+" (xinetd, logfmt or json)")
	return false
}

func hMetrics(e *entry, a *attrLine) bool {
	w := a.values[0].text
	host, port, err := net.SplitHostPort(w)
	if err == nil {
		if _, ok := portValue(port); !ok {
			err = fmt.Errorf("bad port")
		} else if host != "" {
			if _, perr := netip.ParseAddr(host); perr != nil {
				err = perr
			}
		}
	}
	if err != nil {
		e.valueErr(a, 0, "Bad value for metrics: "+w+" (ADDRESS:PORT, e.g. 127.0.0.1:9101)")
		return false
	}
	e.l.defs.metrics = w
	return true
}

// secondsValue parses a non-negative number of seconds.
func secondsValue(e *entry, a *attrLine) (int, bool) {
	n, err := strconv.ParseUint(a.values[0].text, 10, 31)
	if err != nil {
		e.valueErr(a, 0, fmt.Sprintf("Bad value for %s: %s (a number of seconds)", a.name, a.values[0].text))
		return 0, false
	}
	return int(n), true
}

func hBacklog(e *entry, a *attrLine) bool {
	n, err := strconv.ParseUint(a.values[0].text, 10, 31)
	if err != nil || n < 1 || n > 65535 {
		e.valueErr(a, 0, "Bad value for backlog: "+a.values[0].text+" (1 to 65535)")
		return false
	}
	e.svc.Backlog = int(n)
	return true
}

func hIdleTimeout(e *entry, a *attrLine) bool {
	n, ok := secondsValue(e, a)
	e.svc.IdleTimeout = n
	return ok
}

func hConnectTimeout(e *entry, a *attrLine) bool {
	n, ok := secondsValue(e, a)
	e.svc.ConnectTimeout = n
	return ok
}

func hIdentTimeout(e *entry, a *attrLine) bool {
	n, ok := secondsValue(e, a)
	e.svc.IdentTimeout = n
	return ok
}

func hMaxBytes(e *entry, a *attrLine) bool {
	v, ok := sizeValue(a.values[0].text)
	if !ok {
		e.valueErr(a, 0, "Bad value for max_bytes: "+a.values[0].text+" (bytes, k/m/g suffix allowed)")
		return false
	}
	e.svc.MaxBytes = int64(v)
	return true
}

// perMinute parses the count of cpm and per_source_cpm: 0 turns the
// limit off, as -R 0 does for FreeBSD inetd.
func perMinute(e *entry, a *attrLine) (int, bool) {
	n, err := strconv.ParseUint(a.values[0].text, 10, 31)
	if err != nil {
		e.valueErr(a, 0, fmt.Sprintf("Bad value for %s: %s (a number of connections per minute; 0 for no limit)", a.name, a.values[0].text))
		return 0, false
	}
	return int(n), true
}

// hCPM is inetd's invocation rate (`nowait.N`, FreeBSD -R): at most N
// new connections (or, for wait services, server starts) per minute; one
// more stops the service for ten minutes.
func hCPM(e *entry, a *attrLine) bool {
	n, ok := perMinute(e, a)
	e.svc.Inetd.PerMinute = n
	return ok
}

// hPerSourceCPM is FreeBSD inetd's max-connections-per-ip-per-minute
// (`nowait/C/N`, -C): a client address over N connections in a minute is
// refused; the service keeps serving others.
func hPerSourceCPM(e *entry, a *attrLine) bool {
	n, ok := perMinute(e, a)
	e.svc.Inetd.PerIPPerMinute = n
	return ok
}

// maxUnixPath is the longest path a sockaddr_un holds with its NUL.
const maxUnixPath = 107

// hUnixPath makes the service a unix-domain one listening on the path.
func hUnixPath(e *entry, a *attrLine) bool {
	p := a.values[0].text
	if !filepath.IsAbs(p) || len(p) > maxUnixPath || strings.ContainsRune(p, 0) {
		e.valueErr(a, 0, fmt.Sprintf("unix_path must be an absolute path of at most %d bytes: %s", maxUnixPath, clip(p)))
		return false
	}
	e.svc.UnixPath = filepath.Clean(p)
	return true
}

func hUnixOwner(e *entry, a *attrLine) bool {
	c, ok := e.cred(a, "user", e.l.sys.UID)
	e.svc.UnixOwner = c
	return ok
}

func hUnixGroup(e *entry, a *attrLine) bool {
	c, ok := e.cred(a, "group", e.l.sys.GID)
	e.svc.UnixGroup = c
	return ok
}

func hUnixMode(e *entry, a *attrLine) bool {
	v, err := strconv.ParseUint(a.values[0].text, 8, 32)
	if err != nil || v > 0o777 {
		e.valueErr(a, 0, "unix_mode is invalid: "+a.values[0].text+" (octal 0 to 777)")
		return false
	}
	if v&0o222 == 0 {
		e.warnAt(a, 0, WarnUnixMode, fmt.Sprintf("unix_mode %04o gives nobody write permission, which connecting to a socket needs: only root can connect", v))
	}
	e.svc.UnixMode = uint32(v)
	return true
}

func hOnlyUsers(e *entry, a *attrLine) bool {
	list, ok := e.creds(a, "user", e.l.sys.UID)
	e.svc.OnlyUsers = list
	return ok
}

func hOnlyGroups(e *entry, a *attrLine) bool {
	list, ok := e.creds(a, "group", e.l.sys.GID)
	e.svc.OnlyGroups = list
	return ok
}

// creds resolves every word of only_users or only_groups.
func (e *entry) creds(a *attrLine, what string, lookup func(string) (int, bool)) ([]service.Cred, bool) {
	out := make([]service.Cred, 0, len(a.values))
	ok := true
	for i, w := range a.values {
		if allDigits(w.text) {
			n, err := strconv.ParseUint(w.text, 10, 31)
			if err == nil {
				out = append(out, service.Cred{Name: w.text, ID: int(n)})
				continue
			}
		} else if id, found := lookup(w.text); found {
			out = append(out, service.Cred{Name: w.text, ID: id})
			continue
		}
		e.valueErr(a, i, "Unknown "+what+": "+w.text)
		ok = false
	}
	return out, ok
}

// baseName is argv[0] for a server without NAMEINARGS.
func baseName(p string) string { return path.Base(p) }

// proxyVersion reads one PROXY protocol version word: v1 or v2 (the bare
// digit too, as haproxy's send-proxy-v2 users may write it).
func proxyVersion(w string) (service.ProxyVersions, bool) {
	switch strings.ToLower(w) {
	case "v1", "1":
		return service.ProxyV1, true
	case "v2", "2":
		return service.ProxyV2, true
	}
	return 0, false
}

func hProxyProtocol(e *entry, a *attrLine) bool {
	var v service.ProxyVersions
	for i, w := range a.values {
		b, ok := proxyVersion(w.text)
		if !ok {
			e.valueErr(a, i, "Bad value for proxy_protocol: "+w.text+" (v1, v2 or both: the header versions accepted)")
			return false
		}
		v |= b
	}
	e.svc.ProxyProtocol = v
	return true
}

func hProxyFrom(e *entry, a *attrLine) bool { return e.addrListOp(a, &e.svc.ProxyFrom) }

func hProxyTimeout(e *entry, a *attrLine) bool {
	n, err := strconv.ParseUint(a.values[0].text, 10, 31)
	if err != nil || n < 1 || n > 3600 {
		e.valueErr(a, 0, "Bad value for proxy_timeout: "+a.values[0].text+" (1 to 3600 seconds)")
		return false
	}
	e.svc.ProxyTimeout = int(n)
	return true
}

func hRedirectProxyProtocol(e *entry, a *attrLine) bool {
	v, ok := proxyVersion(a.values[0].text)
	if !ok {
		e.valueErr(a, 0, "Bad value for redirect_proxy_protocol: "+a.values[0].text+" (v1 or v2)")
		return false
	}
	e.svc.RedirectProxyProtocol = 1
	if v == service.ProxyV2 {
		e.svc.RedirectProxyProtocol = 2
	}
	return true
}
