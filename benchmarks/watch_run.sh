#!/bin/bash
# Every 5 s, one line about the newest process whose command line matches PATTERN: UTC time, RssAnon
# (kB), bytes it has read from disk, the newest file in CKPT_DIR, the 1-minute load. Used for the
# peak anonymous memory and read rates of long `gnnkit train` runs in BENCHMARKS.md; the peak is
# `awk '{print $2}' LOG | sort -n | tail -1`. Usage: bash benchmarks/watch_run.sh PATTERN [CKPT_DIR] >> LOG
set -u
pattern=$1
ckpt=${2:-}
while true; do
  pid=""
  for p in $(pgrep -f -- "$pattern"); do  # not this script, its subshells, nor whatever started it
    tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q "watch_run.sh" || pid=$p
  done
  if [ -n "$pid" ]; then
    rss=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null)
    read_bytes=$(awk '/^read_bytes/ {print $2}' "/proc/$pid/io" 2>/dev/null)
    newest=$([ -n "$ckpt" ] && ls "$ckpt" 2>/dev/null | sort | tail -1)
    echo "$(date -u +%H:%M:%S) $rss $read_bytes $newest $(cut -d' ' -f1 /proc/loadavg)"
  fi
  sleep 5
done
