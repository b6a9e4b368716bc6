package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gxinetd/gxinetd/access"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
	"github.com/gxinetd/gxinetd/logging"
	"github.com/gxinetd/gxinetd/parser"
	"github.com/gxinetd/gxinetd/parser/inetd"
)

// DefaultConfigFile is read when no -f is given, so an existing xinetd
// installation moves over unchanged.
const DefaultConfigFile = "/etc/xinetd.conf"

// DefaultInetdConf is what -inetd_compat adds.
const DefaultInetdConf = "/etc/inetd.conf"

// Load reads the configuration the options name, in whichever language,
// and returns it with every message. It never returns nil. Check mode and
// reload both come through here, so they can never disagree.
func Load(o *Options) *service.Config { return loadWith(o, &sysdb.DB{Root: o.SysRoot}) }

// loadWith is Load reading the system databases through db: the running
// daemon keeps one for its life, so that what the parser resolved and what
// servers are started with (initgroups, the auth builtin) agree, and
// refreshes it on every reload.
func loadWith(o *Options, db *sysdb.DB) *service.Config {
	if o.InetdFile != "" {
		return loadInetd(o, db, o.InetdFile)
	}
	path := o.ConfigFile
	if path == "" {
		path = DefaultConfigFile
	}
	// -f FILE naming an inetd.conf: say which language was chosen.
	if data, err := os.ReadFile(path); err == nil && inetd.Sniff(data) {
		cfg := loadInetd(o, db, path)
		cfg.Diags = append(service.Diags{{Pos: service.Source{File: path}, Severity: service.SevNotice,
			Code: "N-LANGUAGE", Msg: "read as inetd.conf (dialect " + dialectName(o.Dialect) + "): the file has no service blocks and its lines have inetd.conf's fields"}}, cfg.Diags...)
		return cfg
	}
	cfg := parser.Load(path, parser.Options{Sys: db, CheckOwnership: o.CheckOwnership})
	if o.InetdCompat {
		compat := o.InetdCompatFile
		if compat == "" {
			compat = DefaultInetdConf
		}
		if _, err := os.Stat(compat); err == nil {
			svcs, diags := inetd.Load(compat, inetdOptions(o, db))
			for _, s := range svcs {
				if s.Status == service.StatusAccepted {
					parser.FillFromDefaults(&cfg.Defaults, s)
				}
			}
			cfg.Services = append(cfg.Services, svcs...)
			cfg.Diags = append(cfg.Diags, diags...)
			cfg.Files = append(cfg.Files, compat)
			rejectClashes(cfg)
		}
	}
	applyGlobal(o, cfg)
	checkSandboxHost(cfg)
	return cfg
}

func dialectName(d string) string {
	if d == "" {
		return inetd.DefaultDialect
	}
	return d
}

func inetdOptions(o *Options, db *sysdb.DB) inetd.Options {
	return inetd.Options{Sys: db, Dialect: o.Dialect, MaxChild: o.MaxChild, PerIPPerMinute: o.PerIPPerMinute,
		PerMinute: o.PerMinute, MaxChildPerIP: o.MaxChildPerIP, BindAddr: o.BindAddr, CheckOwnership: o.CheckOwnership}
}

func loadInetd(o *Options, db *sysdb.DB, path string) *service.Config {
	svcs, diags := inetd.Load(path, inetdOptions(o, db))
	cfg := &service.Config{Main: path, Files: []string{path}, Services: svcs, Diags: diags}
	cfg.Defaults.Instances = service.Unlimited
	cfg.Defaults.PerSource = service.Unlimited
	cfg.Defaults.PerSourcePrefix4, cfg.Defaults.PerSourcePrefix6 = 32, 128
	for _, s := range svcs {
		// FreeBSD inetd: -w wraps external services, -W internal ones;
		// without them tcp_wrappers is not consulted at all. The parser
		// marks every line unwrapped, so the switch must clear the mark.
		// As in FreeBSD, a stream service that accepts its own
		// connections (wait) is never wrapped: inetd never sees them.
		internal := s.IsInternal()
		wrap := (internal && o.WrapInternal) || (!internal && o.WrapExternal)
		if s.SocketType == service.SockStream && s.Wait {
			wrap = false
		}
		if wrap {
			s.Flags &^= service.FlagNoLibwrap
		} else {
			s.Flags |= service.FlagNoLibwrap
		}
		if o.LogConnections {
			s.LogType = service.LogType{Kind: service.LogSyslog, Facility: "daemon", Level: "info",
				Src: service.Source{Origin: "flag"}}
			s.LogOnSuccess |= service.LogSuccessHost | service.LogSuccessPID
			s.LogOnFailure |= service.LogFailureHost
		}
	}
	if _, err := os.Stat(path); err != nil && len(svcs) == 0 && !diags.HasFatal() {
		cfg.Diags = append(cfg.Diags, service.Diag{Pos: service.Source{File: path}, Severity: service.SevError,
			Code: "E-OPEN", Fatal: true, Msg: fmt.Sprintf("open( %s ) failed: %v", path, err)})
	}
	applyGlobal(o, cfg)
	checkSandboxHost(cfg)
	return cfg
}

// applyGlobal folds command-line switches that act like attributes into
// the loaded services.
func applyGlobal(o *Options, cfg *service.Config) {
	if !o.NoLibwrap {
		return
	}
	for _, s := range cfg.Services {
		s.Flags |= service.FlagNoLibwrap
	}
}

// rejectClashes rejects -inetd_compat entries that would listen where an
// xinetd entry already does: the xinetd entry wins, as in xinetd.
func rejectClashes(cfg *service.Config) {
	type key struct {
		port  int
		proto string
	}
	seen := map[key]string{}
	for _, s := range cfg.Services {
		if s.Status != service.StatusAccepted || s.IsTCPMuxClient() || s.Port == 0 {
			continue
		}
		k := key{s.Port, strings.ToLower(s.Protocol)}
		if other, ok := seen[k]; ok && s.Language == service.LangInetd {
			d := service.Diag{Pos: s.Src, Severity: service.SevError, Code: "E-DUPLICATE", Service: s.ID,
				Msg: fmt.Sprintf("service: %s id: %s is unique but its identical to service: %s - DISABLING", s.Name, s.ID, other)}
			s.Status = service.StatusRejected
			s.Reasons = append(s.Reasons, d)
			cfg.Diags = append(cfg.Diags, d)
			continue
		}
		seen[k] = s.ID
	}
}

// Check is `gxinetd -t`: load, validate, print every message (and the
// resolved configuration as JSON or as xinetd's -d dump when asked), and
// return the exit status: 0 when every entry is usable, 1 otherwise.
func Check(o *Options, stdout, stderr io.Writer, asJSON bool) int {
	cfg := Load(o)
	// Specificity: gxinetd's most-specific-entry rule can decide
	// differently from xinetd's "both lists match -> refuse".
	for _, s := range cfg.Services {
		if s.Status != service.StatusAccepted {
			continue
		}
		for _, line := range access.SpecificityConflicts(s) {
			cfg.Diags = append(cfg.Diags, service.Diag{Pos: s.Src, Severity: service.SevWarning, Code: "W-SPECIFICITY",
				Service: s.ID, Msg: line})
		}
	}
	accepted, rejected, disabled := 0, 0, 0
	for _, s := range cfg.Services {
		switch s.Status {
		case service.StatusAccepted:
			accepted++
		case service.StatusRejected:
			rejected++
		case service.StatusDisabled:
			disabled++
		}
	}
	status := 0
	if cfg.Diags.HasFatal() || rejected > 0 || cfg.Diags.HasErrors() {
		status = 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(cfg); err != nil {
			fmt.Fprintf(stderr, "gxinetd: encoding json: %v\n", err)
			return 1
		}
		return status
	}
	for _, d := range cfg.Diags {
		fmt.Fprintln(stdout, d.String())
	}
	if o.Debug {
		logging.WriteConfigDump(stdout, cfg)
	}
	verdict := "configuration OK"
	if status != 0 {
		verdict = "configuration has errors"
	}
	fmt.Fprintf(stdout, "%s: %d services accepted, %d rejected, %d disabled (%s)\n",
		cfg.Main, accepted, rejected, disabled, verdict)
	return status
}
