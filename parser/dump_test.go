package parser

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gxinetd/gxinetd/internal/service"
)

// dumpConfig renders a Config compactly for golden files: the diagnostics
// first, then the defaults and every entry with its non-zero fields.
func dumpConfig(cfg *service.Config) string {
	var b strings.Builder
	for _, d := range cfg.Diags {
		b.WriteString(d.String())
		if d.Fatal {
			b.WriteString(" [fatal]")
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	b.WriteString(dumpDefaults(&cfg.Defaults))
	for _, s := range cfg.Services {
		b.WriteString(dumpService(s))
	}
	return b.String()
}

type kv struct {
	b strings.Builder
}

func (k *kv) add(key string, v any) {
	fmt.Fprintf(&k.b, " %s=%v", key, v)
}

func addrs(l service.AddrList) string {
	if !l.Set {
		return "unset"
	}
	var out []string
	for _, e := range l.Entries {
		switch e.Kind {
		case service.AddrHost, service.AddrDomain:
			out = append(out, e.Kind.String()+":"+e.Name)
		default:
			out = append(out, e.Kind.String()+":"+e.Prefix.String())
		}
	}
	return "[" + strings.Join(out, " ") + "]"
}

func logType(l service.LogType) string {
	switch l.Kind {
	case service.LogSyslog:
		return "syslog:" + l.Facility + "." + l.Level
	case service.LogFile:
		s := fmt.Sprintf("file:%s:%d:%d", l.Path, l.Soft, l.Hard)
		if l.Common {
			s += ":common"
		}
		return s
	}
	return "none"
}

func origins(m service.Origins) string {
	var keys []string
	for k, v := range m.All() {
		if v.Origin != "" {
			keys = append(keys, k+"<"+v.Origin)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func dumpDefaults(d *service.Defaults) string {
	var k kv
	k.add("instances", d.Instances)
	k.add("per_source", d.PerSource)
	k.add("cps", fmt.Sprintf("%d/%d", d.CPS.Rate, d.CPS.Wait))
	if d.Bind.Text != "" {
		k.add("bind", d.Bind.Text)
	}
	k.add("log", logType(d.LogType))
	k.add("success", d.LogOnSuccess)
	k.add("failure", d.LogOnFailure)
	k.add("only_from", addrs(d.OnlyFrom))
	k.add("no_access", addrs(d.NoAccess))
	if d.PassEnv != nil {
		k.add("passenv", d.PassEnv)
	}
	if d.Enabled != nil {
		k.add("enabled", d.Enabled)
	}
	if d.Disabled != nil {
		k.add("disabled", d.Disabled)
	}
	if d.Umask != nil {
		k.add("umask", fmt.Sprintf("%03o", *d.Umask))
	}
	if d.Groups {
		k.add("groups", true)
	}
	if d.MaxLoad != 0 {
		k.add("max_load", d.MaxLoad)
	}
	if d.Banner != "" {
		k.add("banner", d.Banner)
	}
	if d.Metrics != "" {
		k.add("metrics", d.Metrics)
	}
	if sb := dumpSandbox(&d.Sandbox, d.MaxDuration); sb != "" {
		k.add("sandbox", sb)
	}
	return "defaults:" + k.b.String() + "\n"
}

func dumpService(s *service.Service) string {
	var k kv
	if s.ID != s.Name {
		k.add("id", s.ID)
	}
	if s.Status != service.StatusAccepted {
		var codes []string
		for _, r := range s.Reasons {
			codes = append(codes, r.Code)
		}
		return fmt.Sprintf("service %s %s%s [%s] lines %d-%d\n", s.Name, s.Status, k.b.String(), strings.Join(codes, " "), s.Src.Line, s.EndLine)
	}
	if s.Type != 0 {
		k.add("type", strings.ReplaceAll(s.Type.String(), " ", ","))
	}
	if s.Flags != 0 {
		k.add("flags", strings.ReplaceAll(s.Flags.String(), " ", ","))
	}
	k.add("sock", s.SocketType)
	k.add("proto", fmt.Sprintf("%s/%d", s.Protocol, s.ProtoNum))
	k.add("port", s.Port)
	k.add("family", s.Family)
	if s.UnixPath != "" {
		k.add("unix", fmt.Sprintf("%s:%04o", s.UnixPath, s.UnixMode))
		if s.UnixOwner != nil {
			k.add("unix_owner", s.UnixOwner.ID)
		}
		if s.UnixGroup != nil {
			k.add("unix_group", s.UnixGroup.ID)
		}
		for _, u := range s.OnlyUsers {
			k.add("only_user", u.ID)
		}
		for _, g := range s.OnlyGroups {
			k.add("only_group", g.ID)
		}
	}
	k.add("wait", s.Wait)
	if s.User != nil {
		k.add("user", s.User.ID)
	}
	if s.Group != nil {
		k.add("group", s.Group.ID)
	}
	if s.Builtin != "" {
		k.add("builtin", s.Builtin)
	}
	if s.Server != "" {
		k.add("server", s.Server)
	}
	if s.Argv != nil {
		k.add("argv", fmt.Sprintf("%q", s.Argv))
	}
	if s.Redirect != nil {
		k.add("redirect", fmt.Sprintf("%s:%d", s.Redirect.Host, s.Redirect.Port))
	}
	if !s.Bind.IsZero() {
		b := s.Bind.Text
		if s.Bind.Addr.IsValid() {
			b += "(" + s.Bind.Addr.String() + ")"
		}
		if s.Bind.Interface != "" {
			b += "(if:" + s.Bind.Interface + "/" + s.Bind.IfaceFamily.String() + ")"
		}
		k.add("bind", b)
	}
	if s.V6Only != nil {
		k.add("v6only", *s.V6Only)
	}
	k.add("instances", s.Instances)
	k.add("per_source", s.PerSource)
	k.add("cps", fmt.Sprintf("%d/%d", s.CPS.Rate, s.CPS.Wait))
	if s.MaxLoad != 0 {
		k.add("max_load", s.MaxLoad)
	}
	if s.Groups {
		k.add("groups", true)
	}
	if s.Umask != nil {
		k.add("umask", fmt.Sprintf("%03o", *s.Umask))
	}
	if s.Nice != nil {
		k.add("nice", *s.Nice)
	}
	k.add("log", logType(s.LogType))
	k.add("success", strings.ReplaceAll(s.LogOnSuccess.String(), " ", ","))
	k.add("failure", strings.ReplaceAll(s.LogOnFailure.String(), " ", ","))
	if s.OnlyFrom.Set {
		k.add("only_from", addrs(s.OnlyFrom))
	}
	if s.NoAccess.Set {
		k.add("no_access", addrs(s.NoAccess))
	}
	if s.PassEnv != nil {
		k.add("passenv", s.PassEnv)
	}
	if s.Env != nil {
		k.add("env", s.Env)
	}
	if len(s.AccessTimes) > 0 {
		var ts []string
		for _, t := range s.AccessTimes {
			ts = append(ts, t.String())
		}
		k.add("access_times", strings.Join(ts, ","))
	}
	if s.DenyTime != 0 {
		k.add("deny_time", s.DenyTime)
	}
	if s.Banner != "" {
		k.add("banner", s.Banner)
	}
	if s.BannerSuccess != "" {
		k.add("banner_success", s.BannerSuccess)
	}
	if s.BannerFail != "" {
		k.add("banner_fail", s.BannerFail)
	}
	if s.Libwrap != "" {
		k.add("libwrap", s.Libwrap)
	}
	if s.RPCNumber != 0 || s.RPCHigh != 0 {
		k.add("rpc", fmt.Sprintf("%d/%d-%d", s.RPCNumber, s.RPCLow, s.RPCHigh))
	}
	r := s.Rlim.Get()
	for _, x := range []struct {
		n string
		v service.Rlimit
	}{{"as", r.AS}, {"cpu", r.CPU}, {"data", r.Data}, {"rss", r.RSS}, {"stack", r.Stack}, {"files", r.Files}} {
		if x.v.Set {
			if x.v.Infinity {
				k.add("rlimit_"+x.n, "inf")
			} else {
				k.add("rlimit_"+x.n, x.v.Value)
			}
		}
	}
	if s.LogFormat != "" {
		k.add("log_format", s.LogFormat)
	}
	if sb := dumpSandbox(&s.Sandbox, s.MaxDuration); sb != "" {
		k.add("sandbox", sb)
	}
	if o := origins(s.Origins); o != "" {
		k.add("inherited", o)
	}
	return fmt.Sprintf("service %s %s%s\n", s.Name, s.Status, k.b.String())
}

func dumpSandbox(sb *service.Sandbox, maxDuration int) string {
	var parts []string
	if sb.Chroot != "" {
		parts = append(parts, "chroot:"+sb.Chroot)
	}
	if sb.NoNewPrivs {
		parts = append(parts, "nnp")
	}
	if sb.Namespaces != 0 {
		parts = append(parts, "ns:"+strings.ReplaceAll(sb.Namespaces.String(), " ", "+"))
	}
	if sb.PrivateTmp {
		parts = append(parts, fmt.Sprintf("tmp:%d", sb.PrivateTmpSize))
	}
	if sb.ReadOnlyPaths != nil {
		parts = append(parts, "ro:"+strings.Join(sb.ReadOnlyPaths, "+"))
	}
	if sb.WritablePaths != nil {
		parts = append(parts, "rw:"+strings.Join(sb.WritablePaths, "+"))
	}
	if sb.ReadOnlyRoot {
		parts = append(parts, "ro-root")
	}
	if sb.Seccomp != nil {
		parts = append(parts, "seccomp:"+sb.Seccomp.Profile)
	}
	if maxDuration != 0 {
		parts = append(parts, fmt.Sprintf("max:%ds", maxDuration))
	}
	return strings.Join(parts, ",")
}
