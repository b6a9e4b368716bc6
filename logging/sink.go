package logging

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"gopkg.in/natefinch/lumberjack.v2"
)

// output is what a sink's writer goroutine drives. Only that goroutine
// calls its methods, so implementations need no locking of their own.
type output interface {
	write(b []byte) error
	reopen()
	close()
}

// sink is one destination: a bounded queue and the single goroutine that
// empties it.
type sink struct {
	name string
	m    *Manager
	out  output

	q       chan *[]byte
	wake    chan struct{}
	reopenQ atomic.Bool
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	enq, proc, written, dropped, errs, rotations atomic.Uint64

	// Written by the writer goroutine only.
	reportedDrops, reportedErrs uint64
	lastReport                  time.Time
	lastErr                     error
}

var (
	_ output = (*fileOut)(nil)
	_ output = (*syslogOut)(nil)
)

func (m *Manager) newSink(name string, out output) *sink {
	s := &sink{
		name: name, m: m, out: out,
		q:    make(chan *[]byte, m.o.QueueSize),
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go s.run()
	return s
}

func (s *sink) enqueue(bp *[]byte) {
	s.enq.Add(1)
	select {
	case s.q <- bp:
	default:
		s.enq.Add(^uint64(0))
		s.dropped.Add(1)
		s.m.putBuf(bp)
	}
}

func (s *sink) requestReopen() {
	s.reopenQ.Store(true)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sink) run() {
	defer close(s.done)
	for {
		select {
		case bp := <-s.q:
			s.handle(bp)
		case <-s.wake:
			if s.reopenQ.Swap(false) {
				s.out.reopen()
			}
		case <-s.stop:
			for n := len(s.q); n > 0; n-- {
				s.handle(<-s.q)
			}
			s.report(true)
			s.out.close()
			return
		}
	}
}

func (s *sink) handle(bp *[]byte) {
	if s.reopenQ.Swap(false) {
		s.out.reopen()
	}
	if err := s.out.write(*bp); err != nil {
		s.errs.Add(1)
		s.dropped.Add(1)
		s.lastErr = err
	} else {
		s.written.Add(1)
	}
	s.m.putBuf(bp)
	s.proc.Add(1)
	s.report(false)
}

// report tells the daemon log about drops and write errors since the
// last report, at most once per ReportInterval (always when final).
func (s *sink) report(final bool) {
	d, e := s.dropped.Load(), s.errs.Load()
	if d == s.reportedDrops && e == s.reportedErrs {
		return
	}
	now := time.Now()
	if !final && !s.lastReport.IsZero() && now.Sub(s.lastReport) < s.m.o.ReportInterval {
		return
	}
	if e > s.reportedErrs && s.lastErr != nil {
		s.m.o.Daemon.Logf(LevelError, "log_write", "%s: %d write errors, last: %v", s.name, e-s.reportedErrs, s.lastErr)
	}
	if lost := (d - s.reportedDrops) - (e - s.reportedErrs); lost > 0 {
		s.m.o.Daemon.Logf(LevelWarning, "log_write", "%s: dropped %d log records (queue full)", s.name, lost)
	}
	s.reportedDrops, s.reportedErrs, s.lastReport = d, e, now
}

func (s *sink) stopAndWait(timeout time.Duration) {
	s.once.Do(func() { close(s.stop) })
	select {
	case <-s.done:
	case <-time.After(timeout):
	}
}

func (s *sink) stats() SinkStats {
	return SinkStats{
		Name: s.name, Written: s.written.Load(), Dropped: s.dropped.Load(),
		Errors: s.errs.Load(), Rotations: s.rotations.Load(),
	}
}

// lumberjack starts a goroutine per Logger that Close never stops
// (natefinch/lumberjack#205), so each path gets one Logger for the life
// of the process, shared by every Manager and reload.
var ljRegistry = struct {
	sync.Mutex
	m map[string]*lumberjack.Logger
}{m: map[string]*lumberjack.Logger{}}

func lumberjackFor(path string, backups int) *lumberjack.Logger {
	ljRegistry.Lock()
	defer ljRegistry.Unlock()
	if l, ok := ljRegistry.m[path]; ok {
		return l
	}
	l := &lumberjack.Logger{
		Filename: path,
		// Our own byte accounting decides when to rotate; lumberjack's
		// megabyte limit is set out of reach so it never rotates alone.
		MaxSize:    1 << 30,
		MaxBackups: backups,
		LocalTime:  true,
	}
	ljRegistry.m[path] = l
	return l
}

// ensureFile creates the log file as xinetd does (mode 0644, append) so
// that lumberjack, which would create it 0600, finds it existing, and so
// that an unwritable path is reported at configuration time.
func ensureFile(path string) error {
	if fd, ok := stdioFD(path); ok {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return fmt.Errorf("%s: descriptor %d is not open: %w", path, fd, err)
		}
		return nil
	}
	if specialPath(path) {
		// Opening a FIFO without a reader would block the caller (the
		// daemon applying a configuration); whether it may be written
		// is all that needs saying now.
		if err := unix.Access(path, unix.W_OK); err != nil {
			return &os.PathError{Op: "access", Path: path, Err: err}
		}
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

type fileLimits struct {
	soft, hard int64
	label      string
}

// fileOut writes one log file with xinetd's soft and hard limits in bytes:
// one warning to the daemon log when the soft limit is passed, a rotation
// (through lumberjack, keeping Options.Backups files) before a write would
// pass the hard limit. A path that is not a regular file (specialPath:
// standard output, a pipe, a terminal) is written as it is, without
// limits: rotating it would rename a device node or a link.
type fileOut struct {
	path   string
	lj     *lumberjack.Logger
	sink   *sink
	limits atomic.Pointer[fileLimits]

	size       int64
	sized      bool
	softWarned bool
	special    *os.File // the open special file, when the path is one
	noticed    bool     // the no-limits notice was given
}

func (f *fileOut) setLimits(soft, hard int64, label string) {
	f.limits.Store(&fileLimits{soft: soft, hard: hard, label: label})
}

func (f *fileOut) daemon() *Daemon {
	if f.sink == nil {
		return nil
	}
	return f.sink.m.o.Daemon
}

func (f *fileOut) write(b []byte) error {
	lim := f.limits.Load()
	if !f.sized && specialPath(f.path) {
		sp, err := openSpecial(f.path)
		if err != nil {
			return fmt.Errorf("logging: open %s: %w", f.path, err)
		}
		f.special, f.sized = sp, true
		if (lim.soft > 0 || lim.hard > 0) && !f.noticed {
			f.noticed = true
			f.daemon().Logf(LevelNotice, "log_write",
				"%s log %s is not a regular file: its size limits are not applied and it is never rotated", lim.label, f.path)
		}
	}
	if f.special != nil {
		if _, err := f.special.Write(b); err != nil {
			return fmt.Errorf("logging: write %s: %w", f.path, err)
		}
		return nil
	}
	if !f.sized {
		if err := ensureFile(f.path); err != nil {
			return err
		}
		fi, err := os.Stat(f.path)
		if err != nil {
			return err
		}
		f.size, f.sized, f.softWarned = fi.Size(), true, false
	}
	if lim.hard > 0 && f.size > 0 && f.size+int64(len(b)) > lim.hard {
		if err := f.lj.Rotate(); err != nil {
			return fmt.Errorf("logging: rotate %s: %w", f.path, err)
		}
		backups := 0
		if f.sink != nil {
			f.sink.rotations.Add(1)
			backups = f.sink.m.o.Backups
		}
		f.daemon().Logf(LevelWarning, "log_write",
			"Size of %s log exceeded hard limit: %s rotated at %d bytes (keeping %d old files)",
			lim.label, f.path, lim.hard, backups)
		f.size, f.softWarned = 0, false
	}
	n, err := f.lj.Write(b)
	f.size += int64(n)
	if err != nil {
		return fmt.Errorf("logging: write %s: %w", f.path, err)
	}
	if lim.soft > 0 && !f.softWarned && f.size >= lim.soft {
		f.softWarned = true
		f.daemon().Logf(LevelWarning, "log_write",
			"Size of %s log exceeded soft limit: %s has %d bytes (soft limit %d)", lim.label, f.path, f.size, lim.soft)
	}
	return nil
}

func (f *fileOut) reopen() {
	f.close()
	f.sized = false
}

func (f *fileOut) close() {
	_ = f.lj.Close()
	if f.special != nil {
		_ = f.special.Close()
		f.special = nil
	}
}

// syslogOut sends pre-formatted datagrams to the syslog socket.
type syslogOut struct {
	c syslogConn
}

func (s *syslogOut) write(b []byte) error { return s.c.write(b) }
func (s *syslogOut) reopen()              { s.c.close() }
func (s *syslogOut) close()               { s.c.close() }
