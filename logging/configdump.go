package logging

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// DumpOptions supplies what the dumps need from the system. The zero
// value uses the real system.
type DumpOptions struct {
	// LookupAddr reverse-resolves bind and redirect addresses (xinetd
	// prints "localhost" for 127.0.0.1, "unknown" when the lookup fails).
	// nil uses the system resolver (/etc/hosts first) with a 2 s bound.
	LookupAddr func(netip.Addr) (string, bool)
	// Environ is the daemon's start-up environment, from which passenv
	// picks values; nil is os.Environ().
	Environ []string
}

func (o *DumpOptions) fill() {
	if o.LookupAddr == nil {
		o.LookupAddr = systemLookupAddr
	}
	if o.Environ == nil {
		o.Environ = os.Environ()
	}
}

func systemLookupAddr(a netip.Addr) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	names, err := net.DefaultResolver.LookupAddr(ctx, a.String())
	if err != nil || len(names) == 0 {
		return "", false
	}
	return strings.TrimSuffix(names[0], "."), true
}

// WriteConfigDump writes the configuration the way `xinetd -d` prints it
// after each load: the defaults block, an empty line, then every accepted
// service followed by an empty line, with xinetd's lines and tabs.
func WriteConfigDump(w io.Writer, cfg *service.Config) {
	WriteConfigDumpWith(w, cfg, DumpOptions{})
}

// WriteConfigDumpWith is WriteConfigDump with explicit system hooks.
func WriteConfigDumpWith(w io.Writer, cfg *service.Config, o DumpOptions) {
	o.fill()
	d := newDumper(w, o)
	d.defaults(&cfg.Defaults)
	d.raw("\n")
	for _, s := range cfg.Accepted() {
		d.service(s, 0)
		d.raw("\n")
	}
	d.flush()
}

type dumper struct {
	w     *bufio.Writer
	o     DumpOptions
	names map[netip.Addr]string
}

func newDumper(w io.Writer, o DumpOptions) *dumper {
	return &dumper{w: bufio.NewWriter(w), o: o, names: map[netip.Addr]string{}}
}

func (d *dumper) flush() { _ = d.w.Flush() }

func (d *dumper) raw(s string) { _, _ = d.w.WriteString(s) }

func (d *dumper) line(tabs int, s string) {
	for i := 0; i < tabs; i++ {
		_ = d.w.WriteByte('\t')
	}
	_, _ = d.w.WriteString(s)
	_ = d.w.WriteByte('\n')
}

func (d *dumper) hostName(a netip.Addr) string {
	if n, ok := d.names[a]; ok {
		return n
	}
	n, ok := d.o.LookupAddr(a)
	if !ok || n == "" {
		n = "unknown"
	}
	d.names[a] = n
	return n
}

func (d *dumper) bind(b service.Bind) string {
	switch {
	case b.IsZero():
		return "All addresses."
	case b.Addr.IsValid():
		return d.hostName(b.Addr)
	}
	return b.Text
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// writtenIn reports whether an attribute was set by the entry itself (its
// own line, its inetd.conf line or a command-line flag) rather than
// inherited from defaults or a built-in default, which decides some of
// xinetd's dump lines. The parser records this in Origins.
func writtenIn(origins service.Origins, attr string) bool {
	src, ok := origins.Get(attr)
	return ok && src.Origin != "default" && src.Origin != "defaults"
}

// implied reports whether attr's value was filled in rather than
// written (an entry built without origins counts as written).
func implied(origins service.Origins, attr string) bool {
	src, ok := origins.Get(attr)
	return ok && (src.Origin == "default" || src.Origin == "defaults")
}

func (d *dumper) defaults(df *service.Defaults) {
	d.line(0, "Service defaults")
	if writtenIn(df.Origins, "instances") {
		d.line(1, "Instances = "+df.Instances.String())
	}
	if writtenIn(df.Origins, "groups") {
		d.line(1, "Groups = "+yesNo(df.Groups))
	}
	if df.Umask != nil {
		d.line(1, "umask = "+strconv.FormatUint(uint64(*df.Umask), 8))
	}
	if writtenIn(df.Origins, "cps") {
		d.line(1, "CPS = max conn:"+strconv.Itoa(df.CPS.Rate)+" wait:"+strconv.Itoa(df.CPS.Wait))
	}
	if writtenIn(df.Origins, "per_source") {
		d.line(1, "PER_SOURCE = "+strconv.Itoa(int(df.PerSource)))
	}
	d.line(1, "Bind = "+d.bind(df.Bind))
	d.line(1, "Only from:"+addrList(df.OnlyFrom, "All sites"))
	d.line(1, "No access:"+addrList(df.NoAccess, "No blocked sites"))
	lt := df.LogType
	lt.Common = false
	d.logging(1, lt, df.LogOnSuccess, df.LogOnFailure)
	if df.PassEnv != nil {
		d.line(1, "Passenv ="+words(df.PassEnv))
		d.line(1, "Environment strings:")
		for _, kv := range passEnv(d.o.Environ, df.PassEnv) {
			d.line(2, kv)
		}
	}
}

func words(ws []string) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteByte(' ')
		b.WriteString(w)
	}
	return b.String()
}

// familyFlag is the IPv4/IPv6 flag xinetd always shows: the family of the
// listening socket (a dual-stack socket is IPv6).
func familyFlag(s *service.Service) service.Flags {
	switch s.Family {
	case service.FamilyIPv4:
		return service.FlagIPv4
	case service.FamilyIPv6, service.FamilyDual:
		if s.Flags.Has(service.FlagIPv4) {
			return 0
		}
		return service.FlagIPv6
	}
	return 0
}

// service writes xinetd's sc_dump of one service, its title at tabs
// and its attributes one tab deeper.
func (d *dumper) service(s *service.Service, tabs int) {
	d.line(tabs, "Service configuration: "+s.Name)
	a := tabs + 1
	d.line(a, "id = "+s.ID)
	if f := s.Flags | familyFlag(s); f != 0 {
		d.line(a, "flags = "+f.String())
	}
	if s.Type != 0 {
		d.line(a, "type = "+s.Type.String())
	}
	d.line(a, "socket_type = "+s.SocketType.String())
	d.line(a, "Protocol (name,number) = ("+s.Protocol+","+strconv.Itoa(s.ProtoNum)+")")
	if s.Port != 0 {
		d.line(a, "port = "+strconv.Itoa(s.Port))
	}
	if writtenIn(s.Origins, "instances") {
		d.line(a, "Instances = "+s.Instances.String())
	}
	d.line(a, "wait = "+yesNo(s.Wait))
	if s.User != nil {
		d.line(a, "user = "+strconv.Itoa(s.User.ID))
	}
	if s.Group != nil && !implied(s.Origins, "group") {
		// xinetd prints the gid only when `group` was written: the one
		// a user implies is used, never shown.
		d.line(a, "group = "+strconv.Itoa(s.Group.ID))
	}
	d.line(a, "Groups = "+yesNo(s.Groups))
	if s.Umask != nil {
		d.line(a, "umask = "+strconv.FormatUint(uint64(*s.Umask), 8))
	}
	if s.Nice != nil {
		d.line(a, "Nice = "+strconv.Itoa(*s.Nice))
	}
	if writtenIn(s.Origins, "cps") {
		d.line(a, "CPS = max conn:"+strconv.Itoa(s.CPS.Rate)+" wait:"+strconv.Itoa(s.CPS.Wait))
	}
	d.line(a, "PER_SOURCE = "+strconv.Itoa(int(s.PerSource)))
	d.line(a, "Bind = "+d.bind(s.Bind))
	if !s.IsInternal() && s.Redirect == nil {
		d.line(a, "Server = "+s.Server)
		d.line(a, "Server argv ="+words(s.Argv))
	}
	if s.Libwrap != "" {
		d.line(a, "Libwrap = "+s.Libwrap)
	}
	if r := s.Redirect; r != nil {
		host := r.Host
		if ip, err := netip.ParseAddr(host); err == nil {
			host = d.hostName(ip)
		}
		d.line(a, "Redirect = "+host+":"+strconv.Itoa(r.Port))
	}
	if s.Type.Has(service.TypeRPC) {
		d.line(a, "RPC data")
		d.line(a+1, "program number = "+strconv.Itoa(s.RPCNumber))
		v := strconv.Itoa(s.RPCLow)
		if s.RPCHigh != s.RPCLow {
			v += "-" + strconv.Itoa(s.RPCHigh)
		}
		d.line(a+1, "rpc_version = "+v)
	}
	if len(s.AccessTimes) > 0 {
		ts := make([]string, len(s.AccessTimes))
		for i, t := range s.AccessTimes {
			ts[i] = t.String()
		}
		d.line(a, "Access times ="+words(ts))
	}
	d.line(a, "Only from:"+addrList(s.OnlyFrom, "All sites"))
	d.line(a, "No access:"+addrList(s.NoAccess, "No blocked sites"))
	if s.ProxyProtocol != 0 {
		// gxinetd's own: xinetd has no PROXY protocol.
		t := s.ProxyTimeout
		if t == 0 {
			t = service.DefaultProxyTimeout
		}
		d.line(a, "PROXY protocol = "+s.ProxyProtocol.String()+" (timeout "+strconv.Itoa(t)+" s)")
		d.line(a, "PROXY from:"+addrList(s.ProxyFrom, "No sites"))
	}
	if s.RedirectProxyProtocol != 0 {
		d.line(a, "Redirect PROXY protocol = v"+strconv.Itoa(s.RedirectProxyProtocol))
	}
	if s.Flags.Has(service.FlagSensor) {
		d.line(a, "Deny Time: "+strconv.Itoa(s.DenyTime))
	}
	d.logging(a, s.LogType, s.LogOnSuccess, s.LogOnFailure)
	if s.PassEnv != nil {
		d.line(a, "Passenv ="+words(s.PassEnv))
	}
	if len(s.Env) > 0 {
		d.line(a, "Environment additions:")
		for _, kv := range s.Env {
			d.line(a+1, kv)
		}
	}
	if len(s.Env) > 0 || writtenIn(s.Origins, "passenv") {
		d.line(a, "Environment strings:")
		for _, kv := range serviceEnv(d.o.Environ, s) {
			d.line(a+1, kv)
		}
	}
	d.sandbox(a, &s.Sandbox, s.MaxDuration)
}

// sandbox lists a service's sandbox attributes (gxinetd's; xinetd's
// dump has none, so nothing is written for a service without them).
func (d *dumper) sandbox(a int, sb *service.Sandbox, maxDuration int) {
	if sb.IsZero() && maxDuration == 0 {
		return
	}
	d.line(a, "Sandbox:")
	if sb.Chroot != "" {
		d.line(a+1, "chroot = "+sb.Chroot)
	}
	if ns := sb.EffectiveNamespaces(); ns != 0 {
		d.line(a+1, "namespaces = "+ns.String())
	}
	if sb.PrivateTmp {
		size := sb.PrivateTmpSize
		if size <= 0 {
			size = service.DefaultPrivateTmpSize
		}
		d.line(a+1, "private_tmp = "+strconv.FormatInt(size, 10)+" bytes")
	}
	if sb.ReadOnlyRoot {
		d.line(a+1, "read_only_root = yes")
	}
	if len(sb.ReadOnlyPaths) > 0 {
		d.line(a+1, "read_only_paths ="+words(sb.ReadOnlyPaths))
	}
	if len(sb.WritablePaths) > 0 {
		d.line(a+1, "writable_paths ="+words(sb.WritablePaths))
	}
	if sb.NoNewPrivs || sb.Seccomp != nil {
		d.line(a+1, "no_new_privs = yes")
	}
	if sb.Seccomp != nil {
		d.line(a+1, "seccomp = "+sb.Seccomp.Profile)
	}
	if maxDuration > 0 {
		d.line(a+1, "max_duration = "+strconv.Itoa(maxDuration))
	}
}

func (d *dumper) logging(tabs int, lt service.LogType, succ service.LogSuccess, fail service.LogFailure) {
	switch lt.Kind {
	case service.LogNone:
		d.line(tabs, "No logging")
		return
	case service.LogFile:
		switch {
		case lt.Common:
			d.line(tabs, "Logging to common log file")
		case lt.Soft > 0 || lt.Hard > 0:
			hard := lt.Hard
			if hard == 0 {
				hard = DefaultHardLimit(lt.Soft)
			}
			d.line(tabs, "Logging to file: "+lt.Path+" (soft="+strconv.FormatInt(lt.Soft, 10)+
				" hard="+strconv.FormatInt(hard, 10)+")")
		default:
			d.line(tabs, "Logging to file: "+lt.Path+" (no limits)")
		}
	case service.LogSyslog:
		level := lt.Level
		if level == "" {
			level = "info"
		}
		d.line(tabs, "Logging to syslog. Facility = "+lt.Facility+", level = "+level)
	}
	d.line(tabs, "Log_on_success flags ="+words(succ.Names()))
	d.line(tabs, "Log_on_failure flags ="+words(fail.Names()))
}

// passEnv picks the passenv variables from env, in passenv order.
func passEnv(env []string, names []string) []string {
	var out []string
	for _, n := range names {
		for _, kv := range env {
			if strings.HasPrefix(kv, n+"=") {
				out = append(out, kv)
				break
			}
		}
	}
	return out
}

// serviceEnv is the environment a service's servers get before
// REMOTE_HOST: the passenv subset (the whole start-up environment when
// passenv is not set anywhere), then env, replacing same-named entries.
func serviceEnv(env []string, s *service.Service) []string {
	var out []string
	if s.PassEnv != nil {
		out = passEnv(env, s.PassEnv)
	} else {
		out = append(out, env...)
	}
	for _, kv := range s.Env {
		name, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, old := range out {
			if strings.HasPrefix(old, name+"=") {
				out[i], replaced = kv, true
				break
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// addrList formats an only_from / no_access list in xinetd's notation:
// " ENTRY(TYPE)" per entry, or " "+empty for an empty list (xinetd prints
// "All sites" for an only_from that was set empty too, which denies all).
func addrList(l service.AddrList, empty string) string {
	if len(l.Entries) == 0 {
		return " " + empty
	}
	var b strings.Builder
	b.WriteByte(' ')
	for _, e := range l.Entries {
		b.WriteByte(' ')
		b.WriteString(addrEntry(e))
	}
	return b.String()
}

func addrEntry(e service.AddrEntry) string {
	switch e.Kind {
	case service.AddrHost, service.AddrDomain:
		t := e.Text
		if t == "" {
			t = e.Name
		}
		return t + "(HOST)"
	case service.AddrNet:
		p := e.Prefix
		// Factorised a.b.{x,y} elements and IPv4 /32 are stored as
		// single addresses by xinetd.
		if strings.Contains(e.Text, "{") || p.Addr().Is4() && p.Bits() == 32 {
			return p.Addr().String() + "(NUMERIC)"
		}
		return p.Addr().String() + "/" + maskString(p) + "(NET)"
	}
	return e.Prefix.Addr().String() + "(NUMERIC)"
}

func maskString(p netip.Prefix) string {
	bits := p.Bits()
	if p.Addr().Is4() {
		m := net.CIDRMask(bits, 32)
		return netip.AddrFrom4([4]byte(m)).String()
	}
	m := net.CIDRMask(bits, 128)
	return netip.AddrFrom16([16]byte(m)).String()
}
