package parser

import (
	"fmt"
	"strings"

	"github.com/gxinetd/gxinetd/internal/service"
)

// defaultsState is the defaults as merged so far. Its attribute handlers
// are the services' own, so the values live in a scratch Service; build
// turns it into service.Defaults once every file is read.
type defaultsState struct {
	svc      *service.Service
	origins  map[string]service.Source
	onceSeen map[string]bool // fixed attributes set by any defaults block
	src      service.Source

	enabled, disabled       []string
	enabledSet, disabledSet bool
	metrics                 string
	metricsOnlyFrom         service.AddrList
}

func newDefaultsState() *defaultsState {
	return &defaultsState{
		svc:      &service.Service{},
		origins:  map[string]service.Source{},
		onceSeen: map[string]bool{},
	}
}

// parseTimeAttrs are copied from the defaults read so far into each
// service when its block starts (xinetd §2.5 step 1). A service's own `=`
// replaces the copy; `+=` and `-=` edit it.
var parseTimeAttrs = []string{"log_on_success", "log_on_failure", "only_from", "no_access", "passenv", "banner", "banner_success", "banner_fail", "proxy_from",
	"namespaces", "read_only_paths", "writable_paths"}

// copyListsTo gives a new service its parse-time copy of the defaults.
func (d *defaultsState) copyListsTo(s *service.Service) {
	if len(d.origins) == 0 {
		return
	}
	for _, attr := range parseTimeAttrs {
		src, ok := d.origins[attr]
		if !ok {
			continue
		}
		switch attr {
		case "log_on_success":
			s.LogOnSuccess = d.svc.LogOnSuccess
		case "log_on_failure":
			s.LogOnFailure = d.svc.LogOnFailure
		case "only_from":
			s.OnlyFrom = copyAddrList(d.svc.OnlyFrom)
		case "no_access":
			s.NoAccess = copyAddrList(d.svc.NoAccess)
		case "passenv":
			s.PassEnv = append([]string{}, d.svc.PassEnv...)
		case "banner":
			s.Banner = d.svc.Banner
		case "banner_success":
			s.BannerSuccess = d.svc.BannerSuccess
		case "banner_fail":
			s.BannerFail = d.svc.BannerFail
		case "proxy_from":
			s.ProxyFrom = copyAddrList(d.svc.ProxyFrom)
		case "namespaces":
			s.Sandbox.Namespaces = d.svc.Sandbox.Namespaces
		case "read_only_paths":
			s.Sandbox.ReadOnlyPaths = append([]string(nil), d.svc.Sandbox.ReadOnlyPaths...)
		case "writable_paths":
			s.Sandbox.WritablePaths = append([]string(nil), d.svc.Sandbox.WritablePaths...)
		}
		src.Origin = "defaults"
		s.Origins.Set(attr, src)
	}
}

func copyAddrList(l service.AddrList) service.AddrList {
	out := service.AddrList{Set: l.Set}
	if l.Entries != nil {
		out.Entries = append(make([]service.AddrEntry, 0, len(l.Entries)), l.Entries...)
	}
	return out
}

// afterBlock warns when a defaults block sets parse-time attributes after
// services that were already read: those services never see them, which
// is xinetd's behaviour and almost never what the author meant.
func (d *defaultsState) afterBlock(e *entry, headLine, nServices int) {
	if nServices == 0 {
		return
	}
	var late []string
	for _, attr := range parseTimeAttrs {
		if src, ok := d.origins[attr]; ok && src.File == e.file && src.Line > headLine {
			late = append(late, attr)
		}
	}
	if len(late) == 0 {
		return
	}
	first := e.l.entries[0].svc
	e.report(service.SevWarning, WarnDefaultsLate, "", headLine, 1, false,
		fmt.Sprintf("this defaults block comes after %d service(s) (the first is %s at %s); they do not get its %s, which xinetd copies when a service is read",
			nServices, first.Name, first.Src, strings.Join(late, ", ")))
}

// build produces the final Defaults, with xinetd's built-in values for
// what no defaults block set.
func (d *defaultsState) build() service.Defaults {
	s := d.svc
	out := service.Defaults{
		Src:              d.src,
		LogType:          s.LogType,
		LogOnSuccess:     s.LogOnSuccess,
		LogOnFailure:     s.LogOnFailure,
		LogFormat:        s.LogFormat,
		OnlyFrom:         s.OnlyFrom,
		NoAccess:         s.NoAccess,
		PassEnv:          s.PassEnv,
		Enabled:          d.enabled,
		Disabled:         d.disabled,
		Instances:        service.Unlimited,
		PerSource:        service.Unlimited,
		PerSourcePrefix4: 32,
		PerSourcePrefix6: 128,
		CPS:              service.CPS{Rate: 50, Wait: 10},
		MaxLoad:          s.MaxLoad,
		Groups:           s.Groups,
		Umask:            s.Umask,
		V6Only:           s.V6Only,
		Bind:             s.Bind,
		Banner:           s.Banner,
		BannerSuccess:    s.BannerSuccess,
		BannerFail:       s.BannerFail,
		IdentTimeout:     s.IdentTimeout,
		Backlog:          s.Backlog,
		CPM:              s.Inetd.PerMinute,
		PerSourceCPM:     s.Inetd.PerIPPerMinute,
		Metrics:          d.metrics,
		MetricsOnlyFrom:  d.metricsOnlyFrom,
		ProxyFrom:        s.ProxyFrom,
		ProxyTimeout:     s.ProxyTimeout,
		Sandbox:          s.Sandbox,
		MaxDuration:      s.MaxDuration,
	}
	if len(out.Sandbox.ReadOnlyPaths) == 0 {
		out.Sandbox.ReadOnlyPaths = nil
	}
	if len(out.Sandbox.WritablePaths) == 0 {
		out.Sandbox.WritablePaths = nil
	}
	if _, ok := d.origins["instances"]; ok {
		out.Instances = s.Instances
	}
	if _, ok := d.origins["per_source"]; ok {
		out.PerSource = s.PerSource
	}
	if _, ok := d.origins["per_source_prefix"]; ok {
		out.PerSourcePrefix4, out.PerSourcePrefix6 = s.PerSourcePrefix4, s.PerSourcePrefix6
	}
	if _, ok := d.origins["cps"]; ok {
		out.CPS = s.CPS
	}
	out.Origins = service.OriginsOf(d.origins)
	return out
}

// setByEntry reports whether a service's own lines (or its inetd.conf
// line, or a command-line flag) gave attr a value, as opposed to the
// defaults or a built-in default.
func setByEntry(s *service.Service, attr string) bool {
	o, ok := s.Origins.Get(attr)
	return ok && o.Origin != "default" && o.Origin != "defaults"
}

// FillFromDefaults applies xinetd's second defaults step (after all files
// are read) to one service: every attribute below that the service did not
// set itself (its Origins entry is missing, or says "default" or
// "defaults") is taken from d, or from the built-in default when d does
// not set it either. The daemon calls it for -inetd_compat entries, which
// never get the parse-time list copies.
//
// Attributes: instances, per_source, per_source_prefix, cps, max_load,
// groups, umask, bind (interface), v6only, log_type, log_on_success,
// log_on_failure, log_format, ident_timeout, backlog, cpm,
// per_source_cpm, proxy_timeout, and the sandbox attributes
// (service.SandboxAttrs). A FILE log_type
// taken from defaults is marked Common (one shared writer).
func FillFromDefaults(d *service.Defaults, s *service.Service) {
	from := func(attr string) (service.Source, bool) {
		if setByEntry(s, attr) {
			return service.Source{}, false
		}
		src, ok := d.Origins.Get(attr)
		if ok {
			src.Origin = "defaults"
		} else {
			src = service.Source{Origin: "default"}
		}
		return src, true
	}
	inDefaults := d.Origins.Has

	if src, ok := from("instances"); ok {
		s.Instances = service.Unlimited
		if inDefaults("instances") {
			s.Instances = d.Instances
		}
		s.Origins.Set("instances", src)
	}
	if src, ok := from("per_source"); ok {
		s.PerSource = service.Unlimited
		if inDefaults("per_source") {
			s.PerSource = d.PerSource
		}
		s.Origins.Set("per_source", src)
	}
	if src, ok := from("per_source_prefix"); ok {
		s.PerSourcePrefix4, s.PerSourcePrefix6 = 32, 128
		if inDefaults("per_source_prefix") {
			s.PerSourcePrefix4, s.PerSourcePrefix6 = d.PerSourcePrefix4, d.PerSourcePrefix6
		}
		s.Origins.Set("per_source_prefix", src)
	}
	if src, ok := from("cps"); ok {
		s.CPS = service.CPS{Rate: 50, Wait: 10}
		if inDefaults("cps") {
			s.CPS = d.CPS
		}
		s.Origins.Set("cps", src)
	}
	// The rest have no built-in value worth recording: absent means off.
	// (Plain code rather than a table of closures: this runs once per
	// service and closures would allocate.)
	take := func(attr string) bool {
		// The defaults' few attributes first: most names end there.
		if !inDefaults(attr) || setByEntry(s, attr) {
			return false
		}
		src := d.Origins.At(attr)
		src.Origin = "defaults"
		s.Origins.Set(attr, src)
		return true
	}
	if take("max_load") {
		s.MaxLoad = d.MaxLoad
	}
	if take("groups") {
		s.Groups = d.Groups
	}
	if take("umask") {
		s.Umask = cloneU32(d.Umask)
	}
	if take("bind") {
		s.Bind = d.Bind
	}
	if take("v6only") {
		s.V6Only = cloneBool(d.V6Only)
	}
	if take("log_type") {
		s.LogType = d.LogType
		s.LogType.Common = d.LogType.Kind == service.LogFile
	}
	if take("log_on_success") {
		s.LogOnSuccess = d.LogOnSuccess
	}
	if take("log_on_failure") {
		s.LogOnFailure = d.LogOnFailure
	}
	if take("log_format") {
		s.LogFormat = d.LogFormat
	}
	if take("ident_timeout") {
		s.IdentTimeout = d.IdentTimeout
	}
	if take("backlog") {
		s.Backlog = d.Backlog
	}
	if take("proxy_timeout") {
		s.ProxyTimeout = d.ProxyTimeout
	}
	if take("cpm") {
		s.Inetd.PerMinute = d.CPM
	}
	if take("per_source_cpm") {
		s.Inetd.PerIPPerMinute = d.PerSourceCPM
	}
	fillSandbox(d, s, take)
	// A bind inherited by a dual-stack entry decides its family, as an
	// explicit one does for xinetd services.
	if s.Family == service.FamilyDual && s.Bind.Addr.IsValid() && !setByEntry(s, "bind") {
		if s.Bind.Addr.Is4() {
			s.Family = service.FamilyIPv4
		} else {
			s.Family = service.FamilyIPv6
		}
	}
}

func cloneU32(p *uint32) *uint32 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func cloneBool(p *bool) *bool {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// fillSandbox takes each sandbox attribute the service did not set from
// the defaults (lists and the seccomp profile copied, so that services
// never share them).
func fillSandbox(d *service.Defaults, s *service.Service, take func(string) bool) {
	ds, sb := &d.Sandbox, &s.Sandbox
	if take("chroot") {
		sb.Chroot = ds.Chroot
	}
	if take("no_new_privs") {
		sb.NoNewPrivs = ds.NoNewPrivs
	}
	if take("namespaces") {
		sb.Namespaces = ds.Namespaces
	}
	if take("private_tmp") {
		sb.PrivateTmp, sb.PrivateTmpSize = ds.PrivateTmp, ds.PrivateTmpSize
	}
	if take("read_only_paths") {
		sb.ReadOnlyPaths = append([]string(nil), ds.ReadOnlyPaths...)
	}
	if take("writable_paths") {
		sb.WritablePaths = append([]string(nil), ds.WritablePaths...)
	}
	if take("read_only_root") {
		sb.ReadOnlyRoot = ds.ReadOnlyRoot
	}
	if take("seccomp") {
		sb.Seccomp = nil
		if ds.Seccomp != nil {
			c := *ds.Seccomp
			sb.Seccomp = &c
		}
	}
	if take("max_duration") {
		s.MaxDuration = d.MaxDuration
	}
}
