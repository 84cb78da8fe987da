#!/usr/bin/env python3
"""Naive plain-Python reference for benches/engine.sh (re + dict, standard library only).

Usage: python3 benches/reference/naive.py FILE [OUT.tsv]

Same job and output as benches/reference/naive.rs: per (domain, minute) of nginx `cdn` lines,
requests, bytes ($bytes_sent), status classes and exact distinct clients (client =
$http_x_real_ip unless it is `-`, else $remote_addr; compared as text), as TSV sorted by
domain then minute:

    domain  minute_start_unix  requests  bytes  distinct  1xx  2xx  3xx  4xx  5xx

to OUT.tsv (default: standard output); lines/s to standard error. Lines that do not match are
counted and skipped (exit status 1 if any).
"""
import calendar
import re
import sys
import time

LINE = re.compile(
    r'^(\S+) - \S+ \[([^\]]+)\] "[^"]*" (\d{3}) \d+ "[^"]*" "[^"]*" "[^"]*" "([^"]*)" (\S+) .* (\d+)$'
)
MONTHS = {m: i for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if not args:
        sys.exit("usage: naive.py FILE [OUT.tsv]")
    started = time.perf_counter()
    rows = {}  # (domain, minute) -> [requests, bytes, 1xx..5xx, set of clients]
    minutes = {}  # "dd/Mon/yyyy:HH:MM" + zone -> minute start, Unix seconds
    lines = skipped = 0
    with open(args[0], encoding="utf-8", errors="surrogateescape") as f:
        for text in f:
            text = text.rstrip("\r\n")
            if not text:
                continue
            lines += 1
            m = LINE.match(text)
            if m is None:
                skipped += 1
                continue
            remote_addr, stamp, status, real_ip, host, nbytes = m.groups()
            key = stamp[:17] + stamp[20:]
            minute = minutes.get(key)
            if minute is None:
                day, mon, rest = stamp[:17].split("/")
                year, hh, mm = rest.split(":")
                zone = stamp[21:]
                offset = (int(zone[1:3]) * 3600 + int(zone[3:5]) * 60) * (-1 if zone[0] == "-" else 1)
                minute = calendar.timegm((int(year), MONTHS[mon], int(day), int(hh), int(mm), 0)) - offset
                minutes[key] = minute
            domain = host.lower()
            name, colon, port = domain.rpartition(":")
            if colon and port.isdigit():
                domain = name
            row = rows.get((domain, minute))
            if row is None:
                row = rows[(domain, minute)] = [0, 0, 0, 0, 0, 0, 0, set()]
            row[0] += 1
            row[1] += int(nbytes)
            row[1 + int(status) // 100] += 1
            row[7].add(real_ip if real_ip != "-" else remote_addr)
    out = open(args[1], "w") if len(args) > 1 else sys.stdout
    with out:
        for (domain, minute) in sorted(rows, key=lambda k: (k[0].encode("utf-8", "surrogateescape"), k[1])):
            r = rows[(domain, minute)]
            out.write(f"{domain}\t{minute}\t{r[0]}\t{r[1]}\t{len(r[7])}\t{r[2]}\t{r[3]}\t{r[4]}\t{r[5]}\t{r[6]}\n")
    secs = time.perf_counter() - started
    print(f"naive.py: {lines} lines ({skipped} skipped), {len(rows)} rows, {secs:.3f} s, {lines / secs:.0f} lines/s",
          file=sys.stderr)
    sys.exit(1 if skipped else 0)


if __name__ == "__main__":
    main()
