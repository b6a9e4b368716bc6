#!/usr/bin/env bash
# ab.sh ROUNDS OUT "A:B A:B" BIN...: paired, alternating rounds of two scenarios of one daemon
# (plain and with a PROXY header) for several gxinetd builds in one session. Per round, per
# pair, per build (the builds in reverse order every other round): A then B, one JSON line
# each in OUT.<build basename>. Summarise with abpairs.py. Run under the bench lock.
set -u
R=$1 OUT=$2 PAIRS=$3; shift 3
BINS=("$@")
cd "${HARNESS:?set HARNESS to the patched harness directory}"
for r in $(seq $R); do
  if (( r % 2 )); then order=("${BINS[@]}"); else order=(); for ((i=${#BINS[@]}-1;i>=0;i--)); do order+=("${BINS[$i]}"); done; fi
  for pair in $PAIRS; do
    for b in "${order[@]}"; do
      for s in ${pair/:/ }; do
        GXINETD=$b RESULTS=$OUT.$(basename $b) REP=$r DUR=${DUR:-3} WARM=${WARM:-1} ./run.sh gxinetd $s >/dev/null 2>>$OUT.err || echo "fail $b $s r$r" >>$OUT.err
      done
    done
  done
  echo "round $r $(date -u +%T) $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT.log
done
