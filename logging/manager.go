package logging

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// Options configures a Manager.
type Options struct {
	// Ident is the syslog identity of service records; "" is
	// DefaultIdent ("xinetd", what log filters written for xinetd expect).
	Ident string
	// SyslogPath is the syslog socket; "" is /dev/log.
	SyslogPath string
	// QueueSize bounds each sink's queue; 0 is 4096.
	QueueSize int
	// Backups is how many rotated files a FILE log keeps when it reaches
	// its hard limit; 0 is 5.
	Backups int
	// Daemon receives soft-limit warnings, hard-limit rotations, drop
	// reports and write errors. nil discards them.
	Daemon *Daemon
	// WriteTimeout bounds one syslog write (a full socket); 0 is 1 s.
	WriteTimeout time.Duration
	// ReportInterval spaces drop and error reports per sink; 0 is 10 s.
	ReportInterval time.Duration
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// SinkStats are the counters of one sink.
type SinkStats struct {
	Name      string // "syslog", "file:/path", "unrouted"
	Written   uint64 // records written
	Dropped   uint64 // records lost: queue full, write failed, or no sink
	Errors    uint64 // failed writes (also counted in Dropped)
	Rotations uint64 // hard-limit rotations
}

// Stats lists every sink the Manager has had, sorted by name; counters of
// sinks retired by a reload are kept so that they stay monotonic.
type Stats struct {
	Sinks []SinkStats
}

// Drops returns the dropped count per sink name, the shape DumpState wants.
func (s Stats) Drops() map[string]uint64 {
	m := make(map[string]uint64, len(s.Sinks))
	for _, k := range s.Sinks {
		m[k.Name] = k.Dropped
	}
	return m
}

// Sink returns the counters of the named sink.
func (s Stats) Sink(name string) (SinkStats, bool) {
	for _, k := range s.Sinks {
		if k.Name == name {
			return k, true
		}
	}
	return SinkStats{}, false
}

// ServiceError says that a service's log destination could not be opened
// (xinetd: "creation of ID log failed"); the daemon should not start it.
type ServiceError struct {
	ID  string
	Err error
}

func (e *ServiceError) Error() string {
	return fmt.Sprintf("logging: service %s: creation of log failed: %v", e.ID, e.Err)
}
func (e *ServiceError) Unwrap() error { return e.Err }

// ConfigureError lists every service Configure could not give a log.
type ConfigureError []*ServiceError

func (e ConfigureError) Error() string {
	parts := make([]string, len(e))
	for i, s := range e {
		parts[i] = s.Error()
	}
	return strings.Join(parts, "; ")
}

// Failed reports whether the service with id is among the failures.
func (e ConfigureError) Failed(id string) bool {
	for _, s := range e {
		if s.ID == id {
			return true
		}
	}
	return false
}

// Manager routes service records to their sinks. Its methods are safe for
// concurrent use.
type Manager struct {
	o   Options
	pid int

	mu      sync.RWMutex
	files   map[string]*sink // by cleaned path
	syslog  *sink
	retired map[string]SinkStats
	closed  bool

	unrouted atomic.Uint64
	pool     sync.Pool
}

// NewManager returns a Manager with no sinks; Configure opens them.
func NewManager(o Options) *Manager {
	if o.Ident == "" {
		o.Ident = DefaultIdent
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.Backups <= 0 {
		o.Backups = 5
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = time.Second
	}
	if o.ReportInterval <= 0 {
		o.ReportInterval = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &Manager{o: o, pid: os.Getpid(), files: map[string]*sink{}, retired: map[string]SinkStats{}}
	m.pool.New = func() any { b := make([]byte, 0, 256); return &b }
	return m
}

// DefaultHardLimit is xinetd's hard limit for a FILE log given only a
// soft one: soft + max(5 KiB, min(1 % of soft, 20 KiB)).
func DefaultHardLimit(soft int64) int64 {
	extra := soft / 100
	if extra > 20*1024 {
		extra = 20 * 1024
	}
	if extra < 5*1024 {
		extra = 5 * 1024
	}
	return soft + extra
}

type fileWant struct {
	path       string
	soft, hard int64
	label      string // "common" or the first service id
	ids        []string
}

// Configure opens the sinks the services need and retires those no longer
// used. A path keeps its one writer however many services share it and
// across reloads; kept files are reopened (so a reload also completes an
// external rotation) and the syslog connection is kept. The limits of a
// path come from the first service naming it (the defaults' common log
// first). Services whose file cannot be created are returned in a
// ConfigureError; the others are configured anyway.
func (m *Manager) Configure(d *service.Defaults, svcs []*service.Service) error {
	wants := map[string]*fileWant{}
	var order []string
	needSyslog := false
	add := func(lt service.LogType, id string) {
		switch lt.Kind {
		case service.LogSyslog:
			needSyslog = true
		case service.LogFile:
			if lt.Path == "" {
				return
			}
			p := filepath.Clean(lt.Path)
			soft, hard := lt.Soft, lt.Hard
			if soft > 0 && hard == 0 {
				hard = DefaultHardLimit(soft)
			}
			w, ok := wants[p]
			if !ok {
				label := id
				if lt.Common {
					label = "common"
				}
				w = &fileWant{path: p, soft: soft, hard: hard, label: label}
				wants[p] = w
				order = append(order, p)
			} else if (w.soft != soft || w.hard != hard) && id != "" {
				m.o.Daemon.Logf(LevelWarning, "log_configure",
					"service %s: log file %s is shared; using the limits of %s (soft=%d hard=%d)",
					id, p, w.label, w.soft, w.hard)
			}
			if id != "" {
				w.ids = append(w.ids, id)
			}
		}
	}
	if d != nil && d.LogType.Kind == service.LogFile {
		lt := d.LogType
		lt.Common = true
		// The common log opens only when a service uses it, as in xinetd;
		// registering its limits first makes them win for the shared path.
		for _, s := range svcs {
			if s.LogType.Kind == service.LogFile && s.LogType.Common {
				add(lt, "")
				break
			}
		}
	}
	for _, s := range svcs {
		if s == nil {
			continue
		}
		add(s.LogType, s.ID)
	}

	var cerr ConfigureError
	var stop []*sink
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("logging: configure: manager closed")
	}
	for p, s := range m.files {
		if _, ok := wants[p]; !ok {
			stop = append(stop, s)
			delete(m.files, p)
		}
	}
	for _, p := range order {
		w := wants[p]
		if s, ok := m.files[p]; ok {
			fo := s.out.(*fileOut)
			fo.setLimits(w.soft, w.hard, w.label)
			s.requestReopen()
			continue
		}
		if err := ensureFile(p); err != nil {
			for _, id := range w.ids {
				cerr = append(cerr, &ServiceError{ID: id, Err: err})
			}
			continue
		}
		fo := &fileOut{path: p, lj: lumberjackFor(p, m.o.Backups)}
		fo.setLimits(w.soft, w.hard, w.label)
		s := m.newSink("file:"+p, fo)
		fo.sink = s
		m.files[p] = s
	}
	if needSyslog && m.syslog == nil {
		m.syslog = m.newSink("syslog", &syslogOut{c: syslogConn{path: m.o.SyslogPath, timeout: m.o.WriteTimeout}})
	}
	m.mu.Unlock()
	for _, s := range stop {
		m.retire(s)
	}
	if len(cerr) > 0 {
		return cerr
	}
	return nil
}

// retire stops a sink after its queue drains (bounded by the write
// timeout per queued record) and folds its counters into the retired set.
func (m *Manager) retire(s *sink) {
	s.stopAndWait(2 * time.Second)
	st := s.stats()
	m.mu.Lock()
	old := m.retired[st.Name]
	m.retired[st.Name] = SinkStats{
		Name: st.Name, Written: old.Written + st.Written, Dropped: old.Dropped + st.Dropped,
		Errors: old.Errors + st.Errors, Rotations: old.Rotations + st.Rotations,
	}
	m.mu.Unlock()
}

// wanted applies xinetd's rules for whether a record is written at all.
func wanted(r *Record) bool {
	s := r.Service
	if s == nil || s.LogType.Kind == service.LogNone {
		return false
	}
	switch r.Event {
	case EventStart:
		return s.LogOnSuccess != 0
	case EventExit:
		return s.LogOnSuccess.Has(service.LogSuccessExit | service.LogSuccessDuration)
	case EventFail:
		return s.LogOnFailure != 0
	case EventTraffic:
		return s.LogOnSuccess.Has(service.LogSuccessTraffic)
	case EventUserID, EventNoID:
		return true
	}
	return false
}

// Log writes one record if the service's configuration asks for it. It
// never blocks: the line is formatted here and queued; a full queue
// counts a drop.
func (m *Manager) Log(r Record) {
	if m == nil || !wanted(&r) {
		return
	}
	if r.Time.IsZero() {
		r.Time = m.o.Now()
	}
	lt := &r.Service.LogType
	m.mu.RLock()
	var s *sink
	if !m.closed {
		if lt.Kind == service.LogSyslog {
			s = m.syslog
		} else {
			s = m.files[filepath.Clean(lt.Path)]
		}
	}
	m.mu.RUnlock()
	if s == nil {
		m.unrouted.Add(1)
		return
	}
	bp := m.pool.Get().(*[]byte)
	b := (*bp)[:0]
	if lt.Kind == service.LogSyslog {
		b = appendSyslogHeader(b, priority(lt.Facility, lt.Level), r.Time, m.o.Ident, m.pid)
		b = Format(b, &r)
	} else {
		if r.Service.LogFormat == "" || r.Service.LogFormat == service.LogFormatXinetd {
			b = AppendFilePrefix(b, r.Time)
		}
		b = Format(b, &r)
		b = append(b, '\n')
	}
	*bp = b
	s.enqueue(bp)
}

func (m *Manager) putBuf(bp *[]byte) {
	if cap(*bp) > 64*1024 {
		return
	}
	m.pool.Put(bp)
}

func (m *Manager) sinks() []*sink {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*sink, 0, len(m.files)+1)
	for _, s := range m.files {
		out = append(out, s)
	}
	if m.syslog != nil {
		out = append(out, m.syslog)
	}
	return out
}

// Reopen makes every file sink close and reopen its file before its next
// write, so `mv log log.1; kill -HUP` rotation works. The syslog
// connection is kept.
func (m *Manager) Reopen() {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, s := range m.files {
		s.requestReopen()
	}
}

// Flush waits until every queued record has been written (or dropped),
// at most timeout. It reports whether the queues drained.
func (m *Manager) Flush(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		idle := true
		for _, s := range m.sinks() {
			if s.proc.Load() < s.enq.Load() {
				idle = false
				break
			}
		}
		if idle {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

// Close drains and stops every sink. Later records are counted as
// unrouted drops. The lumberjack loggers stay in the registry.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	var all []*sink
	for p, s := range m.files {
		all = append(all, s)
		delete(m.files, p)
	}
	if m.syslog != nil {
		all = append(all, m.syslog)
		m.syslog = nil
	}
	m.mu.Unlock()
	for _, s := range all {
		m.retire(s)
	}
}

// Stats returns the counters of every sink.
func (m *Manager) Stats() Stats {
	byName := map[string]SinkStats{}
	m.mu.RLock()
	for k, v := range m.retired {
		byName[k] = v
	}
	m.mu.RUnlock()
	for _, s := range m.sinks() {
		st := s.stats()
		old := byName[st.Name]
		byName[st.Name] = SinkStats{
			Name: st.Name, Written: old.Written + st.Written, Dropped: old.Dropped + st.Dropped,
			Errors: old.Errors + st.Errors, Rotations: old.Rotations + st.Rotations,
		}
	}
	if n := m.unrouted.Load(); n > 0 {
		byName["unrouted"] = SinkStats{Name: "unrouted", Dropped: n}
	}
	out := Stats{Sinks: make([]SinkStats, 0, len(byName))}
	for _, v := range byName {
		out.Sinks = append(out.Sinks, v)
	}
	sort.Slice(out.Sinks, func(i, j int) bool { return out.Sinks[i].Name < out.Sinks[j].Name })
	return out
}
