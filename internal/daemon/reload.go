package daemon

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
)

// Start and reload follow one rule: a configuration that can start can
// be reloaded. Start serves every accepted entry and reports the rejected
// ones; a reload does the same, per entry, except that a running service
// whose new entry is rejected keeps its previous definition running (and
// the log says so) instead of being dropped, as do the running services
// of a file that cannot be read now. Only a fatal error (the main file or
// the defaults) keeps the whole old configuration, as it would stop a
// start. `gxinetd -t` still fails on any rejected entry, for CI and
// configuration managers.

// reloadServices returns the services a reload of cfg runs: its accepted
// entries and, in their places, the previous definitions of running
// services whose new entries are rejected; then those of running
// services from files that cannot be read now. Called with change held.
func (d *Daemon) reloadServices(cfg *service.Config) []*service.Service {
	running := map[string]*service.Service{}
	for _, r := range d.runs {
		s := r.svc.Load()
		running[strings.ToLower(s.ID)] = s
	}
	accepted := map[string]bool{}
	seen := map[string]bool{}
	for _, s := range cfg.Services {
		seen[strings.ToLower(s.ID)] = true
		if s.Status == service.StatusAccepted {
			accepted[strings.ToLower(s.ID)] = true
		}
	}
	var out []*service.Service
	for _, s := range cfg.Services {
		id := strings.ToLower(s.ID)
		switch {
		case s.Status == service.StatusAccepted:
			out = append(out, s)
		case s.Status == service.StatusRejected && running[id] != nil && !accepted[id]:
			old := running[id]
			delete(running, id) // once, even if two rejected entries share the id
			why := ""
			if len(s.Reasons) > 0 {
				why = ": " + s.Reasons[0].String()
			}
			d.log.Logf(logging.LevelWarning, "reconfig", "service %s: the new entry is rejected%s; its previous definition keeps running", old.ID, why)
			out = append(out, old)
		}
	}
	// Entries of a file that was read before and cannot be read now
	// (permissions, ownership, a read error): nothing in the new
	// configuration says they were removed.
	read := map[string]bool{}
	for _, f := range cfg.Files {
		read[f] = true
	}
	for _, r := range d.runs {
		old := r.svc.Load()
		id := strings.ToLower(old.ID)
		if seen[id] || running[id] != old || old.Src.File == "" || read[old.Src.File] || !unreadable(cfg, old.Src.File) {
			continue
		}
		delete(running, id)
		d.log.Logf(logging.LevelWarning, "reconfig", "service %s: %s cannot be read now; its previous definition keeps running", old.ID, old.Src.File)
		out = append(out, old)
	}
	return out
}

// unreadable reports whether the file exists but the new configuration
// could not read it: an error about including it, or its directory.
func unreadable(cfg *service.Config, file string) bool {
	if _, err := os.Lstat(file); err != nil {
		return false // removed: its entries go
	}
	dir := filepath.Dir(file)
	for _, dg := range cfg.Diags {
		if dg.Severity != service.SevError || (dg.Code != "E-INCLUDE" && dg.Code != "E-OWNERSHIP") {
			continue
		}
		if strings.Contains(dg.Msg, file) || strings.Contains(dg.Msg, "directory: "+dir+" ") {
			return true
		}
	}
	return false
}
