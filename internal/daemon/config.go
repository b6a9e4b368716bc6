package daemon

import (
	"bytes"
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
	"github.com/gxinetd/gxinetd/spawn"
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
	if data, err := sniffPrefix(path); err == nil && inetd.Sniff(data) {
		cfg := loadInetd(o, db, path)
		cfg.Diags = append(service.Diags{{Pos: service.Source{File: path}, Severity: service.SevNotice,
			Code: "N-LANGUAGE", Msg: "read as inetd.conf: the file has no service blocks and its lines have inetd.conf's fields (N-DIALECT-CHOSEN says which dialect)"}}, cfg.Diags...)
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
	limitDiags(cfg)
	checkSandboxHost(cfg)
	return cfg
}

// sniffPrefix reads the beginning of path that inetd.Sniff looks at (its
// first SniffLines lines): reading a whole large file only to sniff it,
// before the parser reads it again, was as much garbage as the file.
func sniffPrefix(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var data []byte
	buf := make([]byte, 64<<10)
	lines := 0
	for lines < inetd.SniffLines {
		n, err := f.Read(buf)
		data = append(data, buf[:n]...)
		lines += bytes.Count(buf[:n], []byte{'\n'})
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return data, nil
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
	limitDiags(cfg)
	checkSandboxHost(cfg)
	return cfg
}

// limitDiags adds what the spawner says about the services' limits
// (rlimit_files above what a server can be given), so the check mode
// shows it and the daemon logs it on every load.
func limitDiags(cfg *service.Config) {
	for _, s := range cfg.Services {
		if s.Status == service.StatusAccepted {
			cfg.Diags = append(cfg.Diags, spawn.CheckLimits(s)...)
		}
	}
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

// CheckSummary is what `gxinetd -t` concludes, printed as its last line
// and, with -json, as the "summary" object next to the configuration.
type CheckSummary struct {
	// Usable is false when a fatal error refuses the whole configuration.
	Usable bool `json:"usable"`
	// Served is how many services the daemon would serve: the accepted
	// ones when the configuration is usable, else 0.
	Served   int `json:"served"`
	Accepted int `json:"accepted"` // entries that are valid on their own
	Rejected int `json:"rejected"`
	Disabled int `json:"disabled"`
	Fatal    int `json:"fatal"` // fatal diagnostics
	Errors   int `json:"errors"`
	Warnings int `json:"warnings"`
	Notices  int `json:"notices"`
	// Exit is the exit status: 0 when the configuration is usable, no
	// entry is rejected and no error dropped a line; 1 otherwise.
	Exit int `json:"exit"`
}

// Summarize counts a loaded configuration for the check mode.
func Summarize(cfg *service.Config) CheckSummary {
	var sum CheckSummary
	for _, s := range cfg.Services {
		switch s.Status {
		case service.StatusAccepted:
			sum.Accepted++
		case service.StatusRejected:
			sum.Rejected++
		case service.StatusDisabled:
			sum.Disabled++
		}
	}
	for _, d := range cfg.Diags {
		if d.Fatal {
			sum.Fatal++
		}
		switch d.Severity {
		case service.SevError:
			sum.Errors++
		case service.SevWarning:
			sum.Warnings++
		default:
			sum.Notices++
		}
	}
	sum.Usable = sum.Fatal == 0
	if sum.Usable {
		sum.Served = sum.Accepted
	}
	if !sum.Usable || sum.Rejected > 0 || sum.Errors > 0 {
		sum.Exit = 1
	}
	return sum
}

// Line is the check mode's last line. It never counts a service as
// served when nothing would be.
func (sum CheckSummary) Line(main string) string {
	counts := func(n int, w string) string { return fmt.Sprintf("%d %s", n, plural(n, w)) }
	diags := counts(sum.Errors, "error") + ", " + counts(sum.Warnings, "warning")
	if !sum.Usable {
		return fmt.Sprintf("%s: configuration refused (%s): nothing would be served; of its entries %d are valid on their own, %d rejected, %d disabled; %s",
			main, counts(sum.Fatal, "fatal error"), sum.Accepted, sum.Rejected, sum.Disabled, diags)
	}
	verdict := "configuration OK"
	if sum.Exit != 0 {
		verdict = "configuration has errors"
	}
	return fmt.Sprintf("%s: %d services accepted, %d rejected, %d disabled; %s (%s)",
		main, sum.Accepted, sum.Rejected, sum.Disabled, diags, verdict)
}

// Check is `gxinetd -t`: load, validate, print every message (and the
// resolved configuration as JSON or as xinetd's -d dump when asked), and
// return the exit status of CheckSummary.Exit (with Options.CheckFatalOnly,
// 0 whenever the configuration is usable).
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
	sum := Summarize(cfg)
	status := sum.Exit
	if o.CheckFatalOnly && sum.Usable {
		// -fatal-only is the unit's start gate: the daemon starts with
		// every usable entry, as xinetd does, so one broken entry must
		// not keep the others from serving.
		status = 0
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		// The summary is one more field next to the configuration's, so
		// that decoding the output into a service.Config still works.
		out := struct {
			*service.Config
			Summary CheckSummary `json:"summary"`
		}{cfg, sum}
		if err := enc.Encode(out); err != nil {
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
	fmt.Fprintln(stdout, sum.Line(cfg.Main))
	return status
}
