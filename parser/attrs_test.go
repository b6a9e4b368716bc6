package parser

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// svcWith is a valid UNLISTED service plus the given attribute lines.
func svcWith(lines ...string) string {
	base := "service test\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\tport = 5000\n\twait = no\n\tuser = root\n\tserver = /bin/cat\n"
	for _, l := range lines {
		base += "\t" + l + "\n"
	}
	return base + "}\n"
}

func parseText(t testing.TB, text string) *service.Config {
	t.Helper()
	cfg := Parse("t.conf", []byte(text), testOptions())
	checkRoundTrip(t, cfg)
	return cfg
}

func codes(ds service.Diags) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Code)
	}
	return out
}

func hasCode(ds service.Diags, code string) bool {
	for _, d := range ds {
		if d.Code == code {
			return true
		}
	}
	return false
}

func findService(cfg *service.Config, name string) *service.Service {
	for _, s := range cfg.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// TestAttributes runs every attribute through good and bad values. want
// is the status of the service; code, when set, must be among the
// diagnostics; check inspects the resulting service.
func TestAttributes(t *testing.T) {
	type tc struct {
		line  string
		want  service.Status
		code  string
		check func(*service.Service) bool
	}
	accepted, rejected := service.StatusAccepted, service.StatusRejected
	cases := []tc{
		{"id = other", accepted, "", func(s *service.Service) bool { return s.ID == "other" }},
		{"id = a b", rejected, CodeAttrCount, nil},
		{"flags = nodelay KEEPALIVE ipv4", accepted, "", func(s *service.Service) bool {
			return s.Flags == service.FlagNoDelay|service.FlagKeepAlive|service.FlagIPv4 && s.Family == service.FamilyIPv4
		}},
		{"flags = DISABLE", rejected, CodeAttrValue, nil},
		{"flags = NODLEAY", rejected, CodeAttrValue, nil},
		{"flags =", rejected, CodeAttrCount, nil},
		{"flags = IPv4 IPv6", accepted, WarnFamily, func(s *service.Service) bool { return s.Family == service.FamilyIPv6 }},
		{"protocol = tcp", accepted, "", func(s *service.Service) bool { return s.Protocol == "tcp" && s.ProtoNum == 6 }},
		{"protocol = TCP", accepted, "", func(s *service.Service) bool { return s.Protocol == "tcp" }},
		{"protocol = sctp", rejected, CodeAttrValue, nil},
		{"group = daemon", accepted, "", func(s *service.Service) bool { return s.Group.ID == 1 }},
		{"group = 4242", accepted, "", func(s *service.Service) bool { return s.Group.ID == 4242 }},
		{"group = nosuch", rejected, CodeAttrValue, nil},
		{"server_args = -a  b\tc", accepted, "", func(s *service.Service) bool {
			return reflect.DeepEqual(s.Argv, []string{"cat", "-a", "b", "c"})
		}},
		{"server_args = a # b", accepted, WarnHashValue, func(s *service.Service) bool { return len(s.ServerArgs) == 3 }},
		{"instances = 5", accepted, "", func(s *service.Service) bool { return s.Instances == 5 }},
		{"instances = unlimited", accepted, "", func(s *service.Service) bool { return s.Instances == service.Unlimited }},
		{"instances = -1", rejected, CodeAttrValue, nil},
		{"per_source = 0", accepted, "", func(s *service.Service) bool { return s.PerSource == 0 }},
		{"per_source = x", rejected, CodeAttrValue, nil},
		{"cps = 10 5", accepted, "", func(s *service.Service) bool { return s.CPS == service.CPS{Rate: 10, Wait: 5} }},
		{"cps = 10", rejected, CodeAttrCount, nil},
		{"cps = ten 5", rejected, CodeAttrValue, nil},
		{"max_load = 2.5", accepted, "", func(s *service.Service) bool { return s.MaxLoad == 2.5 }},
		{"max_load = 0", rejected, CodeAttrValue, nil},
		{"max_load = NaN", rejected, CodeAttrValue, nil},
		{"nice = -5", accepted, "", func(s *service.Service) bool { return *s.Nice == -5 }},
		{"nice = 40", rejected, CodeAttrValue, nil},
		{"umask = 027", accepted, "", func(s *service.Service) bool { return *s.Umask == 0o27 }},
		{"umask = 0999", rejected, CodeAttrValue, nil},
		{"groups = YES", accepted, "", func(s *service.Service) bool { return s.Groups }},
		{"groups = maybe", rejected, CodeAttrValue, nil},
		{"log_type = SYSLOG daemon", accepted, "", func(s *service.Service) bool {
			return s.LogType.Kind == service.LogSyslog && s.LogType.Facility == "daemon" && s.LogType.Level == "info"
		}},
		{"log_type = syslog LOCAL3 Warning", accepted, "", func(s *service.Service) bool { return s.LogType.Level == "warning" && s.LogType.Facility == "local3" }},
		{"log_type = SYSLOG nosuch", rejected, CodeAttrValue, nil},
		{"log_type = SYSLOG daemon loud", rejected, CodeAttrValue, nil},
		{"log_type = FILE /var/log/x.log", accepted, "", func(s *service.Service) bool { return s.LogType.Path == "/var/log/x.log" && s.LogType.Soft == 0 }},
		{"log_type = FILE /l 1K", accepted, "", func(s *service.Service) bool { return s.LogType.Soft == 1024 && s.LogType.Hard == 1024+5120 }},
		{"log_type = FILE /l 10m", accepted, "", func(s *service.Service) bool { return s.LogType.Hard == 10<<20+20<<10 }},
		{"log_type = FILE /l 1000000", accepted, "", func(s *service.Service) bool { return s.LogType.Hard == 1000000+10000 }},
		{"log_type = FILE /l 2K 1K", rejected, CodeAttrValue, nil},
		{"log_type = FILE /l 1K 3K", accepted, "", func(s *service.Service) bool { return s.LogType.Hard == 3072 }},
		{"log_type = FILE /l 1Q", rejected, CodeAttrValue, nil},
		{"log_type = FILE", rejected, CodeAttrCount, nil},
		{"log_type = STDERR", rejected, CodeAttrValue, nil},
		{"log_on_success = PID HOST", accepted, "", func(s *service.Service) bool { return s.LogOnSuccess == service.LogSuccessPID|service.LogSuccessHost }},
		{"log_on_success = RECORD", rejected, CodeAttrValue, nil},
		{"log_on_failure = HOST ATTEMPT", accepted, "", func(s *service.Service) bool {
			return s.LogOnFailure == service.LogFailureHost|service.LogFailureAttempt
		}},
		{"only_from = 10.0.0.0", accepted, "", func(s *service.Service) bool {
			return s.OnlyFrom.Entries[0].Prefix == netip.MustParsePrefix("10.0.0.0/8")
		}},
		{"only_from = 10.1.0.0 10.1.0.5 127.1 0", accepted, "", func(s *service.Service) bool {
			e := s.OnlyFrom.Entries
			return e[0].Prefix.String() == "10.1.0.0/16" && e[1].Prefix.String() == "10.1.0.5/32" &&
				e[2].Prefix.String() == "127.0.0.1/32" && e[3].Prefix.String() == "0.0.0.0/0"
		}},
		{"only_from = 10.0.0.0/33", rejected, CodeAttrValue, nil},
		{"only_from = fe80::/10 ::1", accepted, "", func(s *service.Service) bool {
			e := s.OnlyFrom.Entries
			return e[0].Kind == service.AddrNet && e[0].Prefix.String() == "fe80::/10" && e[1].Prefix.Bits() == 128
		}},
		{"only_from = ::/129", rejected, CodeAttrValue, nil},
		{"only_from = 128.138.{193,194}", accepted, "", func(s *service.Service) bool {
			e := s.OnlyFrom.Entries
			return len(e) == 2 && e[0].Prefix.String() == "128.138.193.0/24" && e[1].Prefix.String() == "128.138.194.0/24"
		}},
		{"only_from = 127.0.0.{1,3}", accepted, "", func(s *service.Service) bool { return s.OnlyFrom.Entries[1].Prefix.String() == "127.0.0.3/32" }},
		{"only_from = 10.{1,,2}", rejected, CodeAttrValue, nil},
		{"only_from = 10.{1,x}", rejected, CodeAttrValue, nil},
		{"only_from = 1,2", rejected, CodeAttrValue, nil},
		{"only_from = 300.1.1.1", rejected, CodeAttrValue, nil},
		{"only_from = .Example.COM", accepted, "", func(s *service.Service) bool {
			return s.OnlyFrom.Entries[0].Kind == service.AddrDomain && s.OnlyFrom.Entries[0].Name == ".example.com"
		}},
		{"only_from = localhost", accepted, "", func(s *service.Service) bool { return s.OnlyFrom.Entries[0].Kind == service.AddrHost }},
		{"only_from = unknown-host", accepted, WarnUnresolved, func(s *service.Service) bool { return s.OnlyFrom.Entries[0].Name == "unknown-host" }},
		{"only_from = loopback", accepted, "", func(s *service.Service) bool {
			return s.OnlyFrom.Entries[0].Kind == service.AddrNet && s.OnlyFrom.Entries[0].Prefix.String() == "127.0.0.0/8"
		}},
		{"only_from = corpnet", accepted, "", func(s *service.Service) bool {
			return s.OnlyFrom.Entries[0].Prefix.String() == "10.1.0.0/16"
		}},
		{"only_from = bad!name", rejected, CodeAttrValue, nil},
		{"only_from =", accepted, "", func(s *service.Service) bool { return s.OnlyFrom.Set && len(s.OnlyFrom.Entries) == 0 }},
		{"no_access = 10.0.0.1 ::ffff:10.0.0.1", accepted, "", func(s *service.Service) bool { return len(s.NoAccess.Entries) == 2 }},
		{"access_times = 8:00-17:30 22:00-06:00", accepted, "", func(s *service.Service) bool {
			return reflect.DeepEqual(s.AccessTimes, []service.TimeRange{{Start: 480, End: 1050}, {Start: 1320, End: 360}})
		}},
		{"access_times = 12:00-24:00", accepted, "", func(s *service.Service) bool { return s.AccessTimes[0].End == 1440 }},
		{"access_times = 24:00-12:00", rejected, CodeAttrValue, nil},
		{"access_times = 9:60-10:00", rejected, CodeAttrValue, nil},
		{"access_times = 10:00-10:00", rejected, CodeAttrValue, nil},
		{"access_times = 10-11", rejected, CodeAttrValue, nil},
		{"env = A=1 B=x=y", accepted, "", func(s *service.Service) bool { return reflect.DeepEqual(s.Env, []string{"A=1", "B=x=y"}) }},
		{"env = NOEQ", rejected, CodeAttrValue, nil},
		{"env -= A=1", rejected, CodeOperator, nil},
		{"passenv = PATH NOPE", accepted, WarnPassenv, func(s *service.Service) bool { return reflect.DeepEqual(s.PassEnv, []string{"PATH"}) }},
		{"passenv =", accepted, "", func(s *service.Service) bool { return s.PassEnv != nil && len(s.PassEnv) == 0 }},
		{"redirect = 127.0.0.1 8080", accepted, "", func(s *service.Service) bool { return s.Redirect.Port == 8080 && s.Argv == nil }},
		{"redirect = upstream finger", accepted, "", func(s *service.Service) bool { return s.Redirect.Host == "upstream" && s.Redirect.Port == 79 }},
		{"redirect = 127.0.0.1 99999", rejected, CodeAttrValue, nil},
		{"redirect = 127.0.0.1", rejected, CodeAttrCount, nil},
		{"redirect_source = 127.0.0.2", accepted, "", func(s *service.Service) bool { return s.RedirectSource == netip.MustParseAddr("127.0.0.2") }},
		{"redirect_source = host", rejected, CodeAttrValue, nil},
		{"bind = 127.0.0.1", accepted, "", func(s *service.Service) bool {
			return s.Bind.Addr.String() == "127.0.0.1" && s.Family == service.FamilyIPv4
		}},
		{"bind = ::1", accepted, "", func(s *service.Service) bool { return s.Family == service.FamilyIPv6 }},
		{"interface = eth0", accepted, "", func(s *service.Service) bool { return s.Bind.Interface == "eth0" && s.Family == service.FamilyDual }},
		{"bind = eth0:ipv6", accepted, "", func(s *service.Service) bool {
			return s.Bind.Interface == "eth0" && s.Bind.IfaceFamily == service.FamilyIPv6 && s.Family == service.FamilyIPv6
		}},
		{"bind = wlan7", accepted, WarnInterface, func(s *service.Service) bool { return s.Bind.Interface == "wlan7" }},
		{"bind = no-such-host.example", rejected, CodeAttrValue, nil},
		{"bind = 127.0.0.1 ::1", rejected, CodeAttrCount, nil},
		{"bind = localhost", accepted, "", func(s *service.Service) bool { return s.Bind.Addr.String() == "127.0.0.1" }},
		{"bind = ::1\n\tflags = IPv4", rejected, CodeEntry, nil},
		{"banner = /etc/issue", accepted, "", func(s *service.Service) bool { return s.Banner == "/etc/issue" }},
		{"banner_success = /a", accepted, "", func(s *service.Service) bool { return s.BannerSuccess == "/a" }},
		{"banner_fail = /b", accepted, "", func(s *service.Service) bool { return s.BannerFail == "/b" }},
		{"v6only = yes", accepted, "", func(s *service.Service) bool { return *s.V6Only }},
		{"v6only = sure", rejected, CodeAttrValue, nil},
		{"deny_time = FOREVER", accepted, "", func(s *service.Service) bool { return s.DenyTime == service.DenyForever }},
		{"deny_time = 30", accepted, "", func(s *service.Service) bool { return s.DenyTime == 30 }},
		{"deny_time = soon", rejected, CodeAttrValue, nil},
		{"rlimit_as = 512M", accepted, "", func(s *service.Service) bool { return s.Rlim.Get().AS.Value == 512<<20 }},
		{"rlimit_cpu = UNLIMITED", accepted, "", func(s *service.Service) bool { return s.Rlim.Get().CPU.Infinity }},
		{"rlimit_cpu = 5k", rejected, CodeAttrValue, nil},
		{"rlimit_data = 1k", accepted, "", func(s *service.Service) bool { return s.Rlim.Get().Data.Value == 1024 }},
		{"rlimit_rss = 7", accepted, "", func(s *service.Service) bool { return s.Rlim.Get().RSS.Value == 7 }},
		{"rlimit_stack = 8M", accepted, "", func(s *service.Service) bool { return s.Rlim.Get().Stack.Set }},
		{"rlimit_files = 64", accepted, "", func(s *service.Service) bool { return s.Rlim.Get().Files.Value == 64 }},
		{"rlimit_files = lots", rejected, CodeAttrValue, nil},
		{"libwrap = name", accepted, "", func(s *service.Service) bool { return s.Libwrap == "name" }},
		{"disable = no", accepted, "", nil},
		{"disable = yes", service.StatusDisabled, "", nil},
		{"disable = perhaps", rejected, CodeAttrValue, nil},
		{"per_source_prefix = 24 64", accepted, "", func(s *service.Service) bool { return s.PerSourcePrefix4 == 24 && s.PerSourcePrefix6 == 64 }},
		{"per_source_prefix = 33 64", rejected, CodeAttrValue, nil},
		{"log_format = JSON", accepted, "", func(s *service.Service) bool { return s.LogFormat == service.LogFormatJSON }},
		{"log_format = xml", rejected, CodeAttrValue, nil},
		{"backlog = 128", accepted, "", func(s *service.Service) bool { return s.Backlog == 128 }},
		{"backlog = 0", rejected, CodeAttrValue, nil},
		{"idle_timeout = 30", accepted, "", func(s *service.Service) bool { return s.IdleTimeout == 30 }},
		{"connect_timeout = 5", accepted, "", func(s *service.Service) bool { return s.ConnectTimeout == 5 }},
		{"ident_timeout = 3", accepted, "", func(s *service.Service) bool { return s.IdentTimeout == 3 }},
		{"idle_timeout = -3", rejected, CodeAttrValue, nil},
		{"max_bytes = 1m", accepted, "", func(s *service.Service) bool { return s.MaxBytes == 1<<20 }},
		{"max_bytes = lots", rejected, CodeAttrValue, nil},
		{"cpm = 30", accepted, "", func(s *service.Service) bool { return s.Inetd.PerMinute == 30 }},
		{"cpm = 0", accepted, "", func(s *service.Service) bool { return s.Inetd.PerMinute == 0 }},
		{"cpm = -1", rejected, CodeAttrValue, nil},
		{"per_source_cpm = 10", accepted, "", func(s *service.Service) bool { return s.Inetd.PerIPPerMinute == 10 }},
		{"per_source_cpm = ten", rejected, CodeAttrValue, nil},
		// Only allowed in defaults: xinetd ignores such a line in a
		// service, and so does gxinetd (with an error, so -t says so).
		{"metrics = 127.0.0.1:9101", accepted, CodeAttrDefaults, nil},
		{"enabled = x", accepted, CodeAttrDefaults, nil},
		// Unknown attributes are ignored with a warning, as xinetd does,
		// except near misses of an access restriction.
		{"frobnicate = yes", accepted, WarnAttrUnknown, nil},
		{"kafel_rule = allow", accepted, WarnAttrUnknown, nil},
		{"per_sourse = 3", accepted, WarnAttrUnknown, nil},
		{"no_acess = 10.0.0.1", rejected, CodeAttrUnknown, nil},
		{"disabel = yes", rejected, CodeAttrUnknown, nil},
		// A '#' after exactly the values of a fixed attribute starts a
		// comment; anywhere else it is a value, as in xinetd.
		{"per_source = 2 # the maximum instances of this service per source IP address", accepted, WarnInlineComment,
			func(s *service.Service) bool { return s.PerSource == 2 }},
		{"rlimit_cpu = 20 # the maximum number of CPU seconds that the service may use", accepted, WarnInlineComment,
			func(s *service.Service) bool { return s.Rlim.Get().CPU.Set && s.Rlim.Get().CPU.Value == 20 }},
		{"cps = 10 5 #rate", accepted, WarnInlineComment, func(s *service.Service) bool { return s.CPS == service.CPS{Rate: 10, Wait: 5} }},
		{"cps = 10 # no wait", rejected, CodeAttrCount, nil},
		{"per_source = 2 3 # two", rejected, CodeAttrCount, nil},
		{"per_source = 2#x", rejected, CodeAttrValue, nil},
		{"server_args = -v # verbose", accepted, WarnHashValue,
			func(s *service.Service) bool { return len(s.ServerArgs) == 3 && s.ServerArgs[1] == "#" }},
		{"mdns = yes", accepted, WarnObsolete, nil},
		{"only_form = 10.0.0.1", rejected, CodeAttrUnknown, nil},
		{"port += 5", accepted, CodeAlreadySet, func(s *service.Service) bool { return s.Port == 5000 }},
		{"nice += 5", rejected, CodeOperator, nil},
		{"nice *= 5", rejected, CodeOperator, nil},
		{"nice", rejected, CodeOperator, nil},
		{"nice=5", accepted, WarnNoSpace, func(s *service.Service) bool { return *s.Nice == 5 }},
		{"NICE = 5", accepted, "", func(s *service.Service) bool { return *s.Nice == 5 }},
		{"type = UNLISTED", accepted, CodeAlreadySet, nil},
		{"log_on_success = TRAFFIC", rejected, CodeEntry, nil},
		{"} extra", rejected, CodeSyntax, nil},
		{"x.y = 1", rejected, CodeOperator, nil},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			cfg := parseText(t, svcWith(c.line))
			s := findService(cfg, "test")
			if s == nil {
				t.Fatalf("service missing; diags:\n%v", cfg.Diags)
			}
			if s.Status != c.want {
				t.Fatalf("status %s, want %s; diags:\n%v", s.Status, c.want, cfg.Diags)
			}
			if c.code != "" && !hasCode(cfg.Diags, c.code) {
				t.Errorf("no %s among %v:\n%v", c.code, codes(cfg.Diags), cfg.Diags)
			}
			if c.want == service.StatusRejected && len(s.Reasons) == 0 {
				t.Errorf("rejected without reasons")
			}
			if c.check != nil && !c.check(s) {
				t.Errorf("check failed: %+v", s)
			}
			if c.want == service.StatusAccepted && c.code == "" && cfg.Diags.HasErrors() {
				t.Errorf("unexpected errors:\n%v", cfg.Diags)
			}
		})
	}
}

// TestEntryRules covers the whole-entry rules of xinetd §4 on complete
// entries.
func TestEntryRules(t *testing.T) {
	for _, c := range []struct {
		name, text string
		status     service.Status
		code       string
		check      func(*service.Service) bool
	}{
		{"listed echo builtin", "service echo\n{\n type = INTERNAL\n socket_type = dgram\n wait = yes\n}\n", service.StatusAccepted, "",
			func(s *service.Service) bool { return s.Port == 7 && s.Protocol == "udp" && s.Builtin == "echo" }},
		{"no such builtin", "service finger\n{\n type = INTERNAL\n socket_type = stream\n wait = no\n}\n", service.StatusRejected, CodeBuiltin, nil},
		{"tcpmux only stream", "service tcpmux\n{\n type = INTERNAL\n socket_type = dgram\n protocol = udp\n port = 1\n wait = yes\n}\n", service.StatusRejected, "", nil},
		{"sensor", "service trap\n{\n type = UNLISTED\n flags = SENSOR\n socket_type = stream\n port = 9999\n wait = no\n}\n", service.StatusAccepted, "",
			func(s *service.Service) bool { return s.Builtin == "sensor" && s.User == nil }},
		{"port mismatch", "service ftp\n{\n socket_type = stream\n port = 2121\n wait = no\n user = root\n server = /bin/cat\n}\n", service.StatusRejected, CodePort, nil},
		{"listed port", "service ftp\n{\n socket_type = stream\n wait = no\n user = root\n server = /bin/cat\n}\n", service.StatusAccepted, "",
			func(s *service.Service) bool { return s.Port == 21 && s.Origins.At("port").Origin == "default" }},
		{"port from protocol only", "service tftp\n{\n protocol = udp\n wait = yes\n user = root\n server = /bin/cat\n}\n", service.StatusAccepted, "",
			func(s *service.Service) bool { return s.Port == 69 && s.SocketType == service.SockDgram }},
		{"unlisted needs port", "service x\n{\n type = UNLISTED\n socket_type = stream\n wait = no\n user = root\n server = /bin/cat\n}\n", service.StatusRejected, CodeMissingAttr, nil},
		{"port out of range", "service x\n{\n type = UNLISTED\n socket_type = stream\n port = 70000\n wait = no\n user = root\n server = /bin/cat\n}\n", service.StatusRejected, CodeAttrValue, nil},
		{"tcpmux client", "service mux\n{\n type = UNLISTED TCPMUX\n socket_type = stream\n wait = no\n user = root\n server = /bin/cat\n}\n", service.StatusAccepted, "",
			func(s *service.Service) bool { return s.Port == 0 && s.Protocol == "tcp" }},
		{"tcpmux client must be unlisted", "service mux\n{\n type = TCPMUX\n socket_type = stream\n wait = no\n user = root\n server = /bin/cat\n}\n", service.StatusRejected, CodeEntry, nil},
		{"two tcpmux clients do not clash", "service m1\n{\n type = UNLISTED TCPMUXPLUS\n socket_type = stream\n wait = no\n user = root\n server = /bin/cat\n}\nservice m2\n{\n type = UNLISTED TCPMUX\n socket_type = stream\n wait = no\n user = root\n server = /bin/cat\n}\n", service.StatusAccepted, "", nil},
		{"redirect must not wait", "service r\n{\n type = UNLISTED\n socket_type = stream\n port = 5000\n wait = yes\n user = root\n redirect = 127.0.0.1 80\n}\n", service.StatusRejected, CodeEntry, nil},
		{"redirect tcp only", "service r\n{\n type = UNLISTED\n socket_type = dgram\n port = 5000\n wait = no\n user = root\n redirect = 127.0.0.1 80\n}\n", service.StatusRejected, CodeEntry, nil},
		{"redirect no NAMEINARGS", "service r\n{\n type = UNLISTED\n socket_type = stream\n port = 5000\n wait = no\n user = root\n flags = NAMEINARGS\n server_args = x\n redirect = 127.0.0.1 80\n}\n", service.StatusRejected, CodeEntry, nil},
		{"nameinargs after args", "service n\n{\n type = UNLISTED\n socket_type = stream\n port = 5000\n wait = no\n user = root\n server = /bin/cat\n server_args = zero one\n flags = NAMEINARGS\n}\n", service.StatusAccepted, WarnArgsOrder,
			func(s *service.Service) bool { return reflect.DeepEqual(s.Argv, []string{"zero", "one"}) }},
		{"nameinargs without args", "service n\n{\n type = UNLISTED\n socket_type = stream\n port = 5000\n wait = no\n user = root\n server = /bin/cat\n flags = NAMEINARGS\n}\n", service.StatusRejected, CodeEntry, nil},
		{"nameinargs internal", "service echo\n{\n type = INTERNAL\n socket_type = stream\n wait = no\n flags = NAMEINARGS\n server_args = x\n}\n", service.StatusRejected, CodeEntry, nil},
		{"dgram nowait", "service d\n{\n type = UNLISTED\n socket_type = dgram\n port = 5000\n wait = no\n user = root\n server = /bin/cat\n}\n", service.StatusRejected, CodeEntry, nil},
		{"userid on 113", "service auth\n{\n socket_type = stream\n wait = no\n user = root\n server = /bin/cat\n log_on_success = USERID PID\n log_on_failure = USERID\n}\n", service.StatusAccepted, WarnUserID113,
			func(s *service.Service) bool { return s.LogOnSuccess == service.LogSuccessPID && s.LogOnFailure == 0 }},
		{"rpc listed", "service rstatd\n{\n type = RPC\n socket_type = dgram\n protocol = udp\n rpc_version = 2-4\n wait = yes\n user = root\n server = /bin/cat\n}\n", service.StatusAccepted, "",
			func(s *service.Service) bool { return s.RPCNumber == 100001 && s.RPCLow == 2 && s.RPCHigh == 4 }},
		{"rpc unknown", "service nope\n{\n type = RPC\n socket_type = dgram\n rpc_version = 1\n wait = yes\n user = root\n server = /bin/cat\n}\n", service.StatusRejected, CodeEntry, nil},
		{"rpc unlisted needs number", "service nope\n{\n type = RPC UNLISTED\n socket_type = dgram\n protocol = udp\n rpc_version = 1\n wait = yes\n user = root\n server = /bin/cat\n}\n", service.StatusRejected, CodeMissingAttr, nil},
		{"rpc bad version", "service rstatd\n{\n type = RPC\n socket_type = dgram\n rpc_version = 4-2\n wait = yes\n user = root\n server = /bin/cat\n}\n", service.StatusRejected, CodeAttrValue, nil},
		{"same port other address", "service a\n{\n type = UNLISTED\n socket_type = stream\n port = 5000\n wait = no\n user = root\n server = /bin/cat\n bind = 127.0.0.1\n}\nservice b\n{\n type = UNLISTED\n socket_type = stream\n port = 5000\n wait = no\n user = root\n server = /bin/cat\n bind = 127.0.0.2\n}\n", service.StatusAccepted, "", nil},
		{"same port udp and tcp", "service a\n{\n type = UNLISTED\n socket_type = stream\n port = 5000\n wait = no\n user = root\n server = /bin/cat\n}\nservice b\n{\n type = UNLISTED\n socket_type = dgram\n port = 5000\n wait = yes\n user = root\n server = /bin/cat\n}\n", service.StatusAccepted, "", nil},
		{"v4 and v6only v6 coexist", "service a\n{\n type = UNLISTED\n socket_type = stream\n port = 5000\n wait = no\n user = root\n server = /bin/cat\n flags = IPv4\n}\nservice b\n{\n type = UNLISTED\n socket_type = stream\n port = 5000\n wait = no\n user = root\n server = /bin/cat\n flags = IPv6\n v6only = yes\n}\n", service.StatusAccepted, "", nil},
		{"wildcard clashes with bound", "service a\n{\n type = UNLISTED\n socket_type = stream\n port = 5000\n wait = no\n user = root\n server = /bin/cat\n bind = 127.0.0.1\n}\nservice b\n{\n type = UNLISTED\n socket_type = stream\n port = 5000\n wait = no\n user = root\n server = /bin/cat\n}\n", service.StatusRejected, CodeDuplicate, nil},
		{"braces same line", "service x {\n type = UNLISTED\n socket_type = stream\n port = 5000\n wait = no\n user = root\n server = /bin/cat\n}\n", service.StatusAccepted, WarnBraceSameLine, nil},
		{"header inside block", "service x\n{\n type = UNLISTED\nservice y\n{\n type = UNLISTED\n socket_type = stream\n port = 5000\n wait = no\n user = root\n server = /bin/cat\n}\n", service.StatusAccepted, CodeSyntax, nil},
		{"missing open brace", "service x\n type = UNLISTED\n}\n", service.StatusRejected, CodeSyntax, nil},
		{"eof inside entry", "service x\n{\n type = UNLISTED\n", service.StatusRejected, CodeSyntax, nil},
		{"no name", "service\n{\n}\n", service.StatusRejected, CodeSyntax, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := parseText(t, c.text)
			s := cfg.Services[len(cfg.Services)-1]
			if s.Status != c.status {
				t.Fatalf("status %s, want %s\n%v", s.Status, c.status, cfg.Diags)
			}
			if c.code != "" && !hasCode(cfg.Diags, c.code) {
				t.Errorf("no %s among %v", c.code, cfg.Diags)
			}
			if c.check != nil && !c.check(s) {
				t.Errorf("check failed: %+v", s)
			}
		})
	}
}

// TestUser covers user/group resolution and the group a user implies.
func TestUser(t *testing.T) {
	for _, c := range []struct {
		user       string
		uid, gid   int
		ok         bool
		wantReason string
	}{
		{"root", 0, 0, true, ""},
		{"svc", 1001, 1001, true, ""},
		{"4000", 4000, 4000, true, ""},
		{"nosuchuser", 0, 0, false, "Unknown user: nosuchuser"},
		{"99999999999", 0, 0, false, "Error parsing user as a number"},
	} {
		text := strings.Replace(svcWith(), "user = root", "user = "+c.user, 1)
		s := findService(parseText(t, text), "test")
		if (s.Status == service.StatusAccepted) != c.ok {
			t.Errorf("%s: status %s %v", c.user, s.Status, s.Reasons)
			continue
		}
		if !c.ok {
			if !strings.Contains(s.Reasons[0].Msg, c.wantReason) {
				t.Errorf("%s: reason %q", c.user, s.Reasons[0].Msg)
			}
			continue
		}
		if s.User.ID != c.uid || s.Group == nil || s.Group.ID != c.gid || s.Origins.At("group").Origin != "default" {
			t.Errorf("%s: user %+v group %+v", c.user, s.User, s.Group)
		}
	}
}
