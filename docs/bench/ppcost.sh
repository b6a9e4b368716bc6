#!/usr/bin/env bash
# ppcost.sh GXINETD N ROUNDS OUT: where a PROXY header's cost goes on a spawned server. One daemon
# serves spawn-hello twice (port 17200 plain, 17202 with proxy_protocol = v2, as the harness's
# scenarios); per round, N connections to each (loadgen spawn -c 8, -proxy v2 for the second),
# one JSON line each in OUT: rate, CPU per connection of the daemon, its children and the load
# generator (from loadgen), of the whole machine, its softirq and idle time (/proc/stat), and the
# daemon's voluntary and involuntary context switches (all its threads). Run under the bench lock;
# HARNESS is the patched harness directory (bin/loadgen, bin/hello).
set -u
BIN=$1 N=${2:-8000} R=${3:-6} OUT=$4
H=${HARNESS:?set HARNESS to the patched harness directory}
LG=$H/bin/loadgen
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
for p in 17200 17202; do
	extra=""
	[[ $p == 17202 ]] && extra=$'\tproxy_protocol = v2\n\tproxy_from     = 127.0.0.1\n'
	printf 'service hello%s\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\tprotocol = tcp\n\twait = no\n\tuser = root\n\tbind = 127.0.0.1\n\tport = %s\n\tserver = %s\n%s}\n' \
		"$p" "$p" "$H/bin/hello" "$extra"
done > "$W/conf"
printf 'defaults\n{\n\tlog_type = FILE %s\n\tlog_on_success =\n\tlog_on_failure = HOST\n\tcps = 0 0\n\tinstances = UNLIMITED\n\tper_source = UNLIMITED\n}\n' "$W/service.log" | cat - "$W/conf" > "$W/both.conf"
"$BIN" -f "$W/both.conf" -dontfork >"$W/daemon.out" 2>&1 &
D=$!
trap 'kill $D 2>/dev/null; wait $D 2>/dev/null; rm -rf "$W"' EXIT
"$LG" waitlisten -tcp 17200 -timeout 10s && "$LG" waitlisten -tcp 17202 -timeout 10s || exit 1
"$LG" spawn -addr 127.0.0.1:17202 -c 8 -n 2000 -d 30s -warmup 0s -expect eof -proxy v2 >/dev/null # warm-up
cs() { cat /proc/$D/task/*/status | awk '/^voluntary_ctxt/{v+=$2} /^nonvoluntary/{n+=$2} END{print v, n}'; }
st() { awk '/^cpu /{print $2+$3+$4+$7+$8, $7+$8, $5+$6}' /proc/stat; }
for r in $(seq "$R"); do
	for s in plain pp; do
		if [[ $s == plain ]]; then P=17200 X=(); else P=17202 X=(-proxy v2); fi
		read -r v0 n0 < <(cs); read -r b0 si0 id0 < <(st)
		"$LG" spawn -addr 127.0.0.1:$P -c 8 -n "$N" -d 60s -warmup 0s -pid $D -expect eof -contains hello "${X[@]}" >"$W/lg.json"
		read -r v1 n1 < <(cs); read -r b1 si1 id1 < <(st)
		python3 - "$W/lg.json" $s $r $((v1-v0)) $((n1-n0)) $((b1-b0)) $((si1-si0)) $((id1-id0)) $(getconf CLK_TCK) <<'PY' >>"$OUT"
import json,sys
f,s,r=sys.argv[1:4]; v,n,b,si,idle,hz=map(int,sys.argv[4:])
j=json.load(open(f)); ok=j['ok']; p=j['proc']; us=lambda t: round(t*1e6/hz/ok,1)
print(json.dumps(dict(s=s,r=int(r),rate=round(j['rate']),daemon=round(p['cpu_s']*1e6/ok,1),child=round(p['child_cpu_s']*1e6/ok,1),
  client=round(j['client']['cpu_s']*1e6/ok,1),machine=us(b),softirq=us(si),idle=us(idle),vcs=round(v/ok,2),ncs=round(n/ok,2),busy=j['host']['busy_pct'])))
PY
	done
done
