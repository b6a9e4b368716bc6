# ppcostsum.py OUT: medians of ppcost.sh's lines, plain and with a header, their paired ratio
# and difference, median [min-max] over the rounds.
import json,sys,statistics as st
by={}
for l in open(sys.argv[1]):
    if l.strip():
        r=json.loads(l); by.setdefault(r['r'],{})[r['s']]=r
rounds=[k for k in sorted(by) if set(by[k])=={'plain','pp'}]
print(f"{len(rounds)} rounds")
for k in ['rate','daemon','child','client','machine','softirq','idle','vcs','ncs']:
    a=[by[i]['plain'][k] for i in rounds]; b=[by[i]['pp'][k] for i in rounds]
    rat=[by[i]['pp'][k]/by[i]['plain'][k] for i in rounds if by[i]['plain'][k]] or [float('nan')]; d=[by[i]['pp'][k]-by[i]['plain'][k] for i in rounds]
    print(f"{k:8} plain {st.median(a):8.2f} pp {st.median(b):8.2f}  ratio {st.median(rat):.3f} [{min(rat):.3f}-{max(rat):.3f}]  diff {st.median(d):+.2f} [{min(d):+.2f}..{max(d):+.2f}]")
