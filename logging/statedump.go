package logging

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// Service states in the state dump.
const (
	StateActive     = "Active"
	StateSuspended  = "Suspended"
	StateDisabled   = "Disabled"
	StateNotStarted = "Not started"
)

// DumpService is one accepted service in the state dump.
type DumpService struct {
	ID string
	// Service is the service's configuration; nil looks ID up in
	// DumpState.Config.
	Service  *service.Service
	State    string // StateActive, StateSuspended, StateDisabled, StateNotStarted
	Running  int
	Retry    int
	Attempts int
	FD       int
}

// DumpServer is one running server (or retry entry) in the state dump.
type DumpServer struct {
	ID     string
	PID    int
	Start  time.Time
	FD     int
	Remote netip.AddrPort
	// Flags is xinetd's connection flag mask (1: client address known,
	// 2: descriptor from accept); 0 derives 1 from a known Remote.
	Flags         int
	ForkFailures  int // printed when non-zero
	LogRemoteUser bool
	WritesToLog   bool
}

// ServiceCounters are gxinetd's per-service counters, dumped after
// xinetd's sections and exported as metrics.
type ServiceCounters struct {
	ID           string
	Served       uint64
	Refused      map[string]uint64 // by reason code
	ExecFailures uint64
	BytesIn      uint64
	BytesOut     uint64
	Running      int
}

// DenyEntry is one address on the SENSOR global deny list.
type DenyEntry struct {
	Addr    string
	Expires time.Time // zero: forever
}

// DumpState is the plain data the daemon collects for a SIGUSR1 dump and
// for metrics.
type DumpState struct {
	Version    string
	Now        time.Time
	ConfigFile string
	Config     *service.Config

	Services []DumpService
	Servers  []DumpServer
	Retries  []DumpServer

	ActiveServices, AvailableServices, DescriptorsFree, RunningServers int
	MaxDescriptors, ProcessLimit                                       int

	SocketFDs []int
	OpenFDs   []int // descriptors not in the socket mask
	DebugFD   int   // > 0 prints "debug_fd = N" (-d mode)
	// LoggingService is "enabled" (the default) or "not enabled".
	LoggingService string

	Counters []ServiceCounters
	DenyList []DenyEntry
	LogDrops map[string]uint64

	// Bounded work (metrics only): messages held back by the refusal
	// budget, failure-path ident lookups skipped, and the daemon's
	// goroutines and open descriptors, so that growth under attack or
	// across reloads can be watched from outside.
	LogHeldBack, IdentSkipped   uint64
	Goroutines, OpenDescriptors int
	// HeapLive is the heap the last garbage collection found in use.
	HeapLive uint64
	// AccessTables are the sizes of the access engine's bounded tables
	// (sources, rates, quiet, cps, names, deny) and AccessTableFull how
	// often each was full.
	AccessTables    map[string]int
	AccessTableFull map[string]uint64

	// Dump supplies the resolver and environment for the service blocks.
	Dump DumpOptions
}

const ctimeLayout = time.ANSIC // "Mon Jan _2 15:04:05 2006", ctime(3) without the newline

// Section titles of gxinetd's additions; they sit before END OF DUMP so
// that tools splitting an accumulated dump file on xinetd's markers keep
// working.
const (
	secCounters = "gxinetd service counters:"
	secDeny     = "gxinetd deny list:"
	secDrops    = "gxinetd log drops:"
)

// WriteStateDump writes xinetd's SIGUSR1 dump layout, then gxinetd's
// counters, deny list and log drops (each only when non-empty), then
// END OF DUMP.
func WriteStateDump(w io.Writer, st *DumpState) {
	o := st.Dump
	o.fill()
	d := newDumper(w, o)
	d.raw("INTERNAL STATE DUMP: " + st.Version + "\n")
	d.raw("Current time: " + st.Now.Format(ctimeLayout) + "\n\n")
	d.raw("Services + defaults:\n")
	if st.Config != nil {
		d.defaults(&st.Config.Defaults)
	}
	for _, ds := range st.Services {
		s := ds.Service
		if s == nil && st.Config != nil {
			s = st.Config.Lookup(ds.ID)
		}
		name := ds.ID
		if s != nil {
			name = s.Name
		}
		d.line(0, "Service = "+name)
		d.line(1, "State = "+ds.State)
		if s != nil {
			d.service(s, 1)
		} else {
			d.line(1, "Service configuration: "+name)
			d.line(2, "id = "+ds.ID)
		}
		if ds.State == StateActive {
			d.line(1, "running servers = "+strconv.Itoa(ds.Running))
			d.line(1, "retry servers = "+strconv.Itoa(ds.Retry))
			d.line(1, "attempts = "+strconv.Itoa(ds.Attempts))
			d.line(1, "service fd = "+strconv.Itoa(ds.FD))
		}
		d.raw("\n")
	}
	d.raw("Server table dump:\n")
	for _, sv := range st.Servers {
		d.server(sv)
	}
	d.raw("\nRetry table dump:\n")
	for _, sv := range st.Retries {
		d.server(sv)
	}
	d.raw("\n")
	d.line(0, "Socket mask:"+ints(st.SocketFDs))
	d.line(0, "pfds_last = "+strconv.Itoa(len(st.SocketFDs)))
	d.line(0, "Open descriptors (not in socket mask):"+ints(st.OpenFDs))
	d.raw("\n")
	d.line(0, "active_services = "+strconv.Itoa(st.ActiveServices))
	d.line(0, "available_services = "+strconv.Itoa(st.AvailableServices))
	d.line(0, "descriptors_free = "+strconv.Itoa(st.DescriptorsFree))
	d.line(0, "running_servers = "+strconv.Itoa(st.RunningServers))
	ls := st.LoggingService
	if ls == "" {
		ls = "enabled"
	}
	d.line(0, "Logging service = "+ls)
	d.raw("\n")
	d.line(0, "max_descriptors = "+strconv.Itoa(st.MaxDescriptors))
	d.line(0, "process_limit = "+strconv.Itoa(st.ProcessLimit))
	d.line(0, "config_file = "+st.ConfigFile)
	if st.DebugFD > 0 {
		d.line(0, "debug_fd = "+strconv.Itoa(st.DebugFD))
	}
	d.raw("\n")
	if len(st.Counters) > 0 {
		d.line(0, secCounters)
		for _, c := range st.Counters {
			d.line(0, "Service = "+c.ID)
			d.line(1, "served = "+strconv.FormatUint(c.Served, 10))
			for _, r := range sortedKeys(c.Refused) {
				d.line(1, "refused "+r+" = "+strconv.FormatUint(c.Refused[r], 10))
			}
			d.line(1, "exec_failures = "+strconv.FormatUint(c.ExecFailures, 10))
			d.line(1, "bytes_in = "+strconv.FormatUint(c.BytesIn, 10))
			d.line(1, "bytes_out = "+strconv.FormatUint(c.BytesOut, 10))
			d.line(1, "running = "+strconv.Itoa(c.Running))
		}
		d.raw("\n")
	}
	if len(st.DenyList) > 0 {
		d.line(0, secDeny)
		for _, e := range st.DenyList {
			if e.Expires.IsZero() {
				d.line(1, e.Addr+" forever")
			} else {
				d.line(1, e.Addr+" until "+e.Expires.Format(ctimeLayout))
			}
		}
		d.raw("\n")
	}
	if len(st.LogDrops) > 0 {
		d.line(0, secDrops)
		for _, k := range sortedKeys(st.LogDrops) {
			d.line(1, k+" = "+strconv.FormatUint(st.LogDrops[k], 10))
		}
		d.raw("\n")
	}
	d.raw("END OF DUMP\n\n")
	d.flush()
}

func (d *dumper) server(sv DumpServer) {
	d.line(0, sv.ID+" server")
	d.line(0, "pid = "+strconv.Itoa(sv.PID))
	d.line(0, "start_time = "+sv.Start.Format(ctimeLayout))
	d.line(0, "Connection info:")
	d.line(1, "service = "+sv.ID)
	d.line(1, "descriptor = "+strconv.Itoa(sv.FD))
	flags := sv.Flags
	if flags == 0 && sv.Remote.Addr().IsValid() {
		flags = 1
	}
	d.line(1, "flags = "+strconv.Itoa(flags))
	d.line(1, "remote_address = "+string(appendAddr(nil, sv.Remote))+","+strconv.Itoa(int(sv.Remote.Port())))
	if sv.ForkFailures != 0 {
		d.line(0, "fork_failures = "+strconv.Itoa(sv.ForkFailures))
	}
	d.line(0, "log_remote_user = "+yesNoUpper(sv.LogRemoteUser))
	d.line(0, "writes_to_log = "+yesNoUpper(sv.WritesToLog))
	d.raw("\n")
}

func yesNoUpper(b bool) string {
	if b {
		return "YES"
	}
	return "NO"
}

func ints(v []int) string {
	var b strings.Builder
	for _, n := range v {
		b.WriteByte(' ')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ParsedService is one "Service = NAME" block read back from a dump.
type ParsedService struct {
	Name  string
	ID    string
	State string
	// Config holds the "Service configuration" attribute lines with the
	// indentation removed and nested lines marked by one leading tab.
	Config                       []string
	Running, Retry, Attempts, FD int
	HasCounts                    bool // the four Active-only lines were present
}

// ParsedDump is one state dump read back.
type ParsedDump struct {
	Version  string
	TimeText string
	Time     time.Time // local time; zero if TimeText did not parse
	Defaults []string  // defaults block lines, indentation removed
	Services []ParsedService
	Servers  []DumpServer
	Retries  []DumpServer

	SocketFDs []int
	PfdsLast  int
	OpenFDs   []int

	ActiveServices, AvailableServices, DescriptorsFree, RunningServers int
	LoggingService                                                     string
	MaxDescriptors, ProcessLimit                                       int
	ConfigFile                                                         string
	DebugFD                                                            int

	Counters []ServiceCounters
	DenyList []DenyEntry
	LogDrops map[string]uint64
}

// ParseStateDump reads the last complete dump in r (dump files grow by
// one dump per SIGUSR1).
func ParseStateDump(r io.Reader) (*ParsedDump, error) {
	all, err := ParseStateDumps(r)
	if err != nil {
		return nil, err
	}
	return all[len(all)-1], nil
}

// ParseStateDumps reads every dump in r, oldest first. Lines are limited
// to 1 MiB.
func ParseStateDumps(r io.Reader) ([]*ParsedDump, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var (
		out []*ParsedDump
		p   *dumpParser
		n   int
	)
	for sc.Scan() {
		n++
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "INTERNAL STATE DUMP: "); ok {
			if p != nil {
				return out, fmt.Errorf("logging: state dump line %d: new dump before END OF DUMP", n)
			}
			p = &dumpParser{d: &ParsedDump{Version: v}}
			continue
		}
		if p == nil {
			if strings.TrimSpace(line) == "" {
				continue
			}
			return out, fmt.Errorf("logging: state dump line %d: text outside a dump: %q", n, clip(line))
		}
		if line == "END OF DUMP" {
			out = append(out, p.d)
			p = nil
			continue
		}
		if err := p.line(line); err != nil {
			return out, fmt.Errorf("logging: state dump line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("logging: state dump: %w", err)
	}
	if p != nil {
		return out, errors.New("logging: state dump: truncated (no END OF DUMP)")
	}
	if len(out) == 0 {
		return nil, errors.New("logging: state dump: no dump found")
	}
	return out, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

type dumpParser struct {
	d       *ParsedDump
	section string // "services", "servers", "retries", "tail", secCounters, secDeny, secDrops
	svc     *ParsedService
	inCfg   bool
	srv     *DumpServer
	ctr     *ServiceCounters
	inDef   bool
}

func atoiField(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("bad number %q", clip(v))
	}
	return n, nil
}

func intList(v string) ([]int, error) {
	var out []int
	for _, f := range strings.Fields(v) {
		n, err := atoiField(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func parseRemote(v string) (netip.AddrPort, error) {
	i := strings.LastIndexByte(v, ',')
	if i < 0 {
		return netip.AddrPort{}, fmt.Errorf("bad remote_address %q", clip(v))
	}
	port, err := strconv.ParseUint(v[i+1:], 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad remote port %q", clip(v))
	}
	if v[:i] == "<no address>" || v[:i] == "<invalid address>" {
		return netip.AddrPort{}, nil
	}
	a, err := netip.ParseAddr(v[:i])
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad remote address %q", clip(v))
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

func (p *dumpParser) line(line string) error {
	d := p.d
	if line == "" {
		p.inDef, p.inCfg = false, false
		p.srv, p.ctr = nil, nil
		return nil
	}
	if v, ok := strings.CutPrefix(line, "Current time: "); ok && p.section == "" {
		d.TimeText = v
		if t, err := time.ParseInLocation(ctimeLayout, v, time.Local); err == nil {
			d.Time = t
		}
		return nil
	}
	switch line {
	case "Services + defaults:":
		p.section = "services"
		return nil
	case "Server table dump:":
		p.section, p.svc = "servers", nil
		return nil
	case "Retry table dump:":
		p.section = "retries"
		return nil
	case secCounters, secDeny, secDrops:
		p.section = line
		if line == secDrops && d.LogDrops == nil {
			d.LogDrops = map[string]uint64{}
		}
		return nil
	}
	switch p.section {
	case "services":
		return p.serviceLine(line)
	case "servers", "retries":
		return p.serverLine(line)
	case secCounters:
		return p.counterLine(line)
	case secDeny:
		return p.denyLine(line)
	case secDrops:
		k, v, ok := cutLast(strings.TrimPrefix(line, "\t"), " = ")
		if !ok {
			return fmt.Errorf("bad log drop line %q", clip(line))
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("bad log drop count %q", clip(line))
		}
		d.LogDrops[k] = n
		return nil
	case "tail":
		return p.tailLine(line)
	}
	return fmt.Errorf("unexpected line %q", clip(line))
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+len(sep):], true
}

func (p *dumpParser) serviceLine(line string) error {
	d := p.d
	if line == "Service defaults" {
		p.inDef = true
		return nil
	}
	if v, ok := strings.CutPrefix(line, "Service = "); ok {
		p.inDef, p.inCfg = false, false
		d.Services = append(d.Services, ParsedService{Name: v})
		p.svc = &d.Services[len(d.Services)-1]
		return nil
	}
	if p.svc == nil {
		if p.inDef && strings.HasPrefix(line, "\t") {
			d.Defaults = append(d.Defaults, line[1:])
			return nil
		}
		return fmt.Errorf("unexpected line %q", clip(line))
	}
	s := p.svc
	if strings.HasPrefix(line, "\t\t") && p.inCfg {
		attr := line[2:]
		s.Config = append(s.Config, attr)
		if v, ok := strings.CutPrefix(attr, "id = "); ok {
			s.ID = v
		}
		return nil
	}
	body, ok := strings.CutPrefix(line, "\t")
	if !ok {
		return fmt.Errorf("unexpected line %q", clip(line))
	}
	if v, ok := strings.CutPrefix(body, "State = "); ok {
		s.State = v
		return nil
	}
	if strings.HasPrefix(body, "Service configuration: ") {
		p.inCfg = true
		return nil
	}
	k, v, ok := strings.Cut(body, " = ")
	if !ok {
		return fmt.Errorf("unexpected service line %q", clip(line))
	}
	n, err := atoiField(v)
	if err != nil {
		return err
	}
	p.inCfg = false
	switch k {
	case "running servers":
		s.Running, s.HasCounts = n, true
	case "retry servers":
		s.Retry = n
	case "attempts":
		s.Attempts = n
	case "service fd":
		s.FD = n
	default:
		return fmt.Errorf("unknown service field %q", clip(k))
	}
	return nil
}

func (p *dumpParser) serverLine(line string) error {
	d := p.d
	if strings.HasPrefix(line, "Socket mask:") {
		p.section = "tail"
		return p.tailLine(line)
	}
	if p.srv == nil {
		id, ok := strings.CutSuffix(line, " server")
		if !ok || strings.HasPrefix(line, "\t") {
			return fmt.Errorf("unexpected line %q", clip(line))
		}
		if p.section == "servers" {
			d.Servers = append(d.Servers, DumpServer{ID: id})
			p.srv = &d.Servers[len(d.Servers)-1]
		} else {
			d.Retries = append(d.Retries, DumpServer{ID: id})
			p.srv = &d.Retries[len(d.Retries)-1]
		}
		return nil
	}
	if line == "Connection info:" {
		return nil
	}
	body := strings.TrimPrefix(line, "\t")
	k, v, ok := strings.Cut(body, " = ")
	if !ok {
		return fmt.Errorf("unexpected server line %q", clip(line))
	}
	sv := p.srv
	var err error
	switch k {
	case "pid":
		sv.PID, err = atoiField(v)
	case "start_time":
		sv.Start, err = time.ParseInLocation(ctimeLayout, v, time.Local)
	case "service":
		sv.ID = v
	case "descriptor":
		sv.FD, err = atoiField(v)
	case "flags":
		sv.Flags, err = atoiField(v)
	case "remote_address":
		sv.Remote, err = parseRemote(v)
	case "fork_failures":
		sv.ForkFailures, err = atoiField(v)
	case "log_remote_user":
		sv.LogRemoteUser = v == "YES"
	case "writes_to_log":
		sv.WritesToLog = v == "YES"
	default:
		return fmt.Errorf("unknown server field %q", clip(k))
	}
	return err
}

func (p *dumpParser) tailLine(line string) error {
	d := p.d
	var err error
	if v, ok := strings.CutPrefix(line, "Socket mask:"); ok {
		d.SocketFDs, err = intList(v)
		return err
	}
	if v, ok := strings.CutPrefix(line, "Open descriptors (not in socket mask):"); ok {
		d.OpenFDs, err = intList(v)
		return err
	}
	k, v, ok := strings.Cut(line, " = ")
	if !ok {
		return fmt.Errorf("unexpected line %q", clip(line))
	}
	switch k {
	case "pfds_last":
		d.PfdsLast, err = atoiField(v)
	case "active_services":
		d.ActiveServices, err = atoiField(v)
	case "available_services":
		d.AvailableServices, err = atoiField(v)
	case "descriptors_free":
		d.DescriptorsFree, err = atoiField(v)
	case "running_servers":
		d.RunningServers, err = atoiField(v)
	case "Logging service":
		d.LoggingService = v
	case "max_descriptors":
		d.MaxDescriptors, err = atoiField(v)
	case "process_limit":
		d.ProcessLimit, err = atoiField(v)
	case "config_file":
		d.ConfigFile = v
	case "debug_fd":
		d.DebugFD, err = atoiField(v)
	default:
		return fmt.Errorf("unknown field %q", clip(k))
	}
	return err
}

func (p *dumpParser) counterLine(line string) error {
	d := p.d
	if v, ok := strings.CutPrefix(line, "Service = "); ok {
		d.Counters = append(d.Counters, ServiceCounters{ID: v})
		p.ctr = &d.Counters[len(d.Counters)-1]
		return nil
	}
	body, ok := strings.CutPrefix(line, "\t")
	if !ok || p.ctr == nil {
		return fmt.Errorf("unexpected counter line %q", clip(line))
	}
	k, v, ok := strings.Cut(body, " = ")
	if !ok {
		return fmt.Errorf("unexpected counter line %q", clip(line))
	}
	c := p.ctr
	if r, ok := strings.CutPrefix(k, "refused "); ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("bad refused count %q", clip(line))
		}
		if c.Refused == nil {
			c.Refused = map[string]uint64{}
		}
		c.Refused[r] = n
		return nil
	}
	if k == "running" {
		n, err := atoiField(v)
		c.Running = n
		return err
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return fmt.Errorf("bad counter %q", clip(line))
	}
	switch k {
	case "served":
		c.Served = n
	case "exec_failures":
		c.ExecFailures = n
	case "bytes_in":
		c.BytesIn = n
	case "bytes_out":
		c.BytesOut = n
	default:
		return fmt.Errorf("unknown counter %q", clip(k))
	}
	return nil
}

func (p *dumpParser) denyLine(line string) error {
	body, ok := strings.CutPrefix(line, "\t")
	if !ok {
		return fmt.Errorf("unexpected deny line %q", clip(line))
	}
	if a, ok := strings.CutSuffix(body, " forever"); ok {
		p.d.DenyList = append(p.d.DenyList, DenyEntry{Addr: a})
		return nil
	}
	a, t, ok := strings.Cut(body, " until ")
	if !ok {
		return fmt.Errorf("unexpected deny line %q", clip(line))
	}
	exp, err := time.ParseInLocation(ctimeLayout, t, time.Local)
	if err != nil {
		return fmt.Errorf("bad deny time %q", clip(t))
	}
	p.d.DenyList = append(p.d.DenyList, DenyEntry{Addr: a, Expires: exp})
	return nil
}
