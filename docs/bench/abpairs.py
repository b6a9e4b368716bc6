# abpairs.py OUT BUILD1,BUILD2 A:B ... -- per build and pair: paired rate ratios B/A (median,
# [min-max], bootstrap 95 % interval of the median), the daemon CPU per connection and the
# load generator's CPU per connection; with two builds, also build2/build1 per scenario.
import json,sys,statistics as st,random,collections
# sum.py OUTPREFIX BIN1,BIN2 pair...
out=sys.argv[1]; bins=sys.argv[2].split(','); pairs=[p.split(':') for p in sys.argv[3:]]
random.seed(1)
def boot(x, n=4000):
    m=sorted(st.median(random.choices(x,k=len(x))) for _ in range(n))
    return m[int(0.025*n)], m[int(0.975*n)]
data={}
for b in bins:
    by=collections.defaultdict(dict)
    for l in open(f"{out}.{b}"):
        if l.strip():
            r=json.loads(l); by[r['scenario']][r['rep']]=r
    data[b]=by
cpu=lambda r: r['proc']['cpu_us_per_op']
ccpu=lambda r: r['client']['cpu_s']*1e6/r['ok']
for a,p in pairs:
    for b in bins:
        A=data[b][a]; B=data[b][p]; reps=sorted([k for k in set(A)&set(B) if A[k]['rate']>0 and B[k]['rate']>0],key=int)
        ra=[B[k]['rate']/A[k]['rate'] for k in reps]
        rc=[cpu(B[k])/cpu(A[k]) for k in reps]
        lo,hi=boot(ra); clo,chi=boot(rc)
        print(f"{b:14} {a:>14}->{p:<18} n={len(reps)} rate {st.median([A[k]['rate'] for k in reps]):7.0f} -> {st.median([B[k]['rate'] for k in reps]):7.0f}  ratio {st.median(ra):.3f} [{min(ra):.3f}-{max(ra):.3f}] CI95 [{lo:.3f}-{hi:.3f}]  daemon us/conn {st.median([cpu(A[k]) for k in reps]):6.1f} -> {st.median([cpu(B[k]) for k in reps]):6.1f} (paired {st.median(rc):.3f} CI [{clo:.3f}-{chi:.3f}])  client us/conn {st.median([ccpu(A[k]) for k in reps]):5.1f} -> {st.median([ccpu(B[k]) for k in reps]):5.1f}  err {sum(A[k]['err_total']+B[k]['err_total'] for k in reps)}")
if len(bins)==2:
    for s in sorted({x for pr in pairs for x in pr}):
        A=data[bins[0]][s]; B=data[bins[1]][s]; reps=sorted([k for k in set(A)&set(B) if A[k]['rate']>0 and B[k]['rate']>0],key=int)
        rr=[B[k]['rate']/A[k]['rate'] for k in reps]; cc=[cpu(B[k])/cpu(A[k]) for k in reps]
        print(f"{bins[1]}/{bins[0]} {s:22} rate {st.median(rr):.3f} [{min(rr):.3f}-{max(rr):.3f}]  cpu {st.median(cc):.3f} [{min(cc):.3f}-{max(cc):.3f}]")
