package logging

import (
	"bufio"
	"io"
	"sort"
	"strconv"
	"strings"
)

// WriteMetrics writes the state in the Prometheus text exposition format
// (version 0.0.4). Series are sorted so that scrapes are stable.
func WriteMetrics(w io.Writer, st *DumpState) {
	b := bufio.NewWriter(w)
	defer b.Flush()
	ctrs := append([]ServiceCounters(nil), st.Counters...)
	sort.Slice(ctrs, func(i, j int) bool { return ctrs[i].ID < ctrs[j].ID })

	family := func(name, typ, help string) {
		b.WriteString("# HELP " + name + " " + help + "\n")
		b.WriteString("# TYPE " + name + " " + typ + "\n")
	}
	sample := func(name string, labels []string, v string) {
		b.WriteString(name)
		if len(labels) > 0 {
			b.WriteByte('{')
			for i := 0; i+1 < len(labels); i += 2 {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(labels[i] + `="` + escapeLabel(labels[i+1]) + `"`)
			}
			b.WriteByte('}')
		}
		b.WriteString(" " + v + "\n")
	}
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	i := func(n int) string { return strconv.Itoa(n) }

	family("gxinetd_connections_total", "counter", "Connections served, per service.")
	for _, c := range ctrs {
		sample("gxinetd_connections_total", []string{"service", c.ID}, u(c.Served))
	}
	family("gxinetd_refused_total", "counter", "Connections refused, per service and reason.")
	for _, c := range ctrs {
		for _, r := range sortedKeys(c.Refused) {
			sample("gxinetd_refused_total", []string{"service", c.ID, "reason", r}, u(c.Refused[r]))
		}
	}
	family("gxinetd_running", "gauge", "Servers running now, per service.")
	for _, c := range ctrs {
		sample("gxinetd_running", []string{"service", c.ID}, i(c.Running))
	}
	family("gxinetd_exec_failures_total", "counter", "Servers that could not be started, per service.")
	for _, c := range ctrs {
		sample("gxinetd_exec_failures_total", []string{"service", c.ID}, u(c.ExecFailures))
	}
	family("gxinetd_bytes_total", "counter", "Bytes moved by redirect and builtin services, per service and direction.")
	for _, c := range ctrs {
		sample("gxinetd_bytes_total", []string{"service", c.ID, "direction", "in"}, u(c.BytesIn))
		sample("gxinetd_bytes_total", []string{"service", c.ID, "direction", "out"}, u(c.BytesOut))
	}
	family("gxinetd_log_dropped_total", "counter", "Log records lost, per sink.")
	for _, k := range sortedKeys(st.LogDrops) {
		sample("gxinetd_log_dropped_total", []string{"sink", k}, u(st.LogDrops[k]))
	}
	family("gxinetd_deny_list_entries", "gauge", "Addresses on the SENSOR deny list.")
	sample("gxinetd_deny_list_entries", nil, i(len(st.DenyList)))
	states := map[string]int{}
	for _, s := range st.Services {
		states[s.State]++
	}
	family("gxinetd_services", "gauge", "Accepted services, per state.")
	for _, s := range []string{StateActive, StateSuspended, StateDisabled, StateNotStarted} {
		sample("gxinetd_services", []string{"state", s}, i(states[s]))
	}
	family("gxinetd_running_servers", "gauge", "Servers running now, all services.")
	sample("gxinetd_running_servers", nil, i(st.RunningServers))
	family("gxinetd_log_held_back_total", "counter", "Refusal messages not written: over a source's or the global budget.")
	sample("gxinetd_log_held_back_total", nil, u(st.LogHeldBack))
	family("gxinetd_ident_skipped_total", "counter", "Ident lookups for refused connections skipped: too many running, or the source asked for one recently.")
	sample("gxinetd_ident_skipped_total", nil, u(st.IdentSkipped))
	family("gxinetd_access_table_entries", "gauge", "Entries in the access engine's bounded tables, per table.")
	for _, k := range sortedKeys(st.AccessTables) {
		sample("gxinetd_access_table_entries", []string{"table", k}, i(st.AccessTables[k]))
	}
	family("gxinetd_access_table_full_total", "counter", "Times an access table was full and evicted its oldest entries, per table.")
	for _, k := range sortedKeys(st.AccessTableFull) {
		sample("gxinetd_access_table_full_total", []string{"table", k}, u(st.AccessTableFull[k]))
	}
	family("gxinetd_heap_live_bytes", "gauge", "Heap in use at the end of the last garbage collection.")
	sample("gxinetd_heap_live_bytes", nil, u(st.HeapLive))
	family("gxinetd_goroutines", "gauge", "Goroutines of the daemon.")
	sample("gxinetd_goroutines", nil, i(st.Goroutines))
	family("gxinetd_open_descriptors", "gauge", "Descriptors the daemon has open.")
	sample("gxinetd_open_descriptors", nil, i(st.OpenDescriptors))
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
