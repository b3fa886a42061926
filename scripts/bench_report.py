#!/usr/bin/python3
"""Records and reports the runs of scripts/bench.sh.

  record --results FILE --table download|seeding --size B --piece B
         --seeders N --client NAME [--seeder NAME] --run R --rc RC --cmp-ok 0|1
         --time-file F --start EPOCH [--done-file F | --stats-json F]
         [--seeder-cpu S]
      Appends one run as a JSON line to FILE. The time figures come from the
      `/usr/bin/time -v` output in F: wall clock, user + system CPU, maximum
      resident set. "done" is when the data was complete, which is not when
      the process ended (aria2c waits for its "stopped" announce, the
      python client closes its session, transmission-cli is told to quit):
      from ptorrent's --stats-json (complete_seconds), else from a hook's
      time stamp in --done-file minus --start. Prints a one-line summary.

  floor --results FILE --json TEXT
      Appends bench_floor.py's measurement.

  tables --results FILE
      Prints the Markdown report: per configuration, the median over the
      runs that succeeded of each figure, and a line per failed run; then a
      summary, one row per download configuration (ptorrent against the
      fastest other client), and ptorrent's rate with the most seeders
      against its rate with fewer.
"""

import argparse
import json
import statistics
import sys

MIB = 1 << 20


def parse_elapsed(text):
    """GNU time's "h:mm:ss" or "m:ss.ss" into seconds."""
    secs = 0.0
    for part in text.split(":"):
        secs = secs * 60 + float(part)
    return secs


def parse_time_file(path):
    """The figures bench.sh uses from `/usr/bin/time -v`; {} if none."""
    keys = {
        "Elapsed (wall clock) time (h:mm:ss or m:ss)": ("wall", parse_elapsed),
        "User time (seconds)": ("user", float),
        "System time (seconds)": ("sys", float),
        "Maximum resident set size (kbytes)": ("rss_kib", int),
    }
    out = {}
    try:
        with open(path) as f:
            for line in f:
                key, sep, value = line.strip().rpartition(": ")
                if sep and key in keys:
                    name, conv = keys[key]
                    out[name] = conv(value)
    except OSError:
        pass
    return out


def read_stats(args):
    """ptorrent's --stats-json as a dict ({} for other clients or if unreadable)."""
    if not args.stats_json:
        return {}
    try:
        with open(args.stats_json) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def read_done(args):
    """Seconds from the start of the run to complete data, or None."""
    if args.stats_json:
        return read_stats(args).get("complete_seconds")
    if args.done_file:
        try:
            with open(args.done_file) as f:
                return float(f.read().split()[0]) - args.start
        except (OSError, ValueError, IndexError):
            return None
    return None


def cmd_record(args):
    t = parse_time_file(args.time_file)
    ok = args.rc == 0 and args.cmp_ok == 1 and "wall" in t
    rec = {
        "table": args.table, "size": args.size, "piece": args.piece, "seeders": args.seeders,
        "client": args.client, "seeder": args.seeder, "run": args.run, "rc": args.rc,
        "cmp_ok": bool(args.cmp_ok), "ok": ok, "wall": t.get("wall"),
        "cpu": t["user"] + t["sys"] if "user" in t else None,
        "rss_mib": t["rss_kib"] / 1024 if "rss_kib" in t else None,
        "done": read_done(args), "seeder_cpu": args.seeder_cpu,
        # ptorrent only: CPU inside its write calls (storing the file)
        "store_cpu": read_stats(args).get("cpu_store_seconds"),
    }
    with open(args.results, "a") as f:
        f.write(json.dumps(rec) + "\n")
    who = args.client + (f" <- {args.seeder}" if args.seeder else "")
    print(f"bench: run {args.run} {who}: {'ok' if ok else 'FAILED'} rc={args.rc} "
          f"cmp={'same' if args.cmp_ok else 'DIFFERENT/missing'} "
          f"wall={fmt(rec['wall'])} done={fmt(rec['done'])} cpu={fmt(rec['cpu'])} "
          f"rss={fmt(rec['rss_mib'], 0)}MiB", file=sys.stderr)
    return 0


def cmd_floor(args):
    rec = json.loads(args.json)
    rec["table"] = "floor"
    with open(args.results, "a") as f:
        f.write(json.dumps(rec) + "\n")
    return 0


# ---- tables -------------------------------------------------------------

def fmt(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def human(n):
    for unit, div in (("GiB", 1 << 30), ("MiB", MIB), ("KiB", 1024)):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n} B"


def median(recs, key):
    vals = [r[key] for r in recs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return None if a is None or not b else a / b


def cpu_outside_writes(pt_runs):
    """Median over ptorrent's runs of its CPU minus the CPU inside its write
    calls (--stats-json cpu_store_seconds), or None."""
    rests = [{"rest": r["cpu"] - r["store_cpu"]} for r in pt_runs
             if r.get("cpu") is not None and r.get("store_cpu") is not None]
    return median(rests, "rest")


def failures(recs):
    """One line per failed run, so a table never hides one."""
    lines = []
    for r in recs:
        if not r["ok"]:
            who = r["client"] + (f" from {r['seeder']}" if r.get("seeder") else "")
            lines.append(f"- FAILED: {who}, run {r['run']}: exit {r['rc']}, "
                         f"download {'identical' if r['cmp_ok'] else 'different or missing'}")
    return lines + [""] if lines else []


def download_table(size, piece, seeders, recs, floor):
    runs = max(r["run"] for r in recs)
    out = [f"### download: {human(size)}, {human(piece)} pieces, {seeders} libtorrent "
           f"seeder{'s' if seeders > 1 else ''} (median of {runs} run{'s' if runs > 1 else ''})",
           "",
           "| client | ok | wall s | MiB/s | done s | CPU s | peak RSS MiB | wall / ptorrent |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    clients = list(dict.fromkeys(r["client"] for r in recs))
    good = {c: [r for r in recs if r["client"] == c and r["ok"]] for c in clients}
    pt_wall = median(good.get("ptorrent", []), "wall")
    for c in clients:
        g, n = good[c], sum(1 for r in recs if r["client"] == c)
        wall = median(g, "wall")
        out.append(f"| {c} | {len(g)}/{n} | {fmt(wall)} | {fmt(ratio(size / MIB, wall), 1)} | "
                   f"{fmt(median(g, 'done'))} | {fmt(median(g, 'cpu'))} | "
                   f"{fmt(median(g, 'rss_mib'), 0)} | {fmt(ratio(wall, pt_wall))} |")
    out.append("")
    pt_cpu = median(good.get("ptorrent", []), "cpu")
    if floor and pt_cpu is not None:
        out.append(f"ptorrent CPU {pt_cpu:.2f} s = {pt_cpu / floor['floor_cpu']:.1f} x the floor "
                   f"(SHA-1 {floor['sha1_cpu']:.2f} s + one loopback receive "
                   f"{floor['tcp_recv_cpu']:.2f} s = {floor['floor_cpu']:.2f} s)"
                   + (f"; {pt_cpu / floor['store_floor_cpu']:.1f} x with the store "
                      f"(+ writing the file {floor['store_cpu']:.2f} s = "
                      f"{floor['store_floor_cpu']:.2f} s)." if "store_cpu" in floor else "."))
        rest = cpu_outside_writes(good.get("ptorrent", []))
        if rest is not None:
            out.append(f"Of that, ptorrent spent {median(good['ptorrent'], 'store_cpu'):.2f} s "
                       f"inside its write calls (storing the file: median of its "
                       f"--stats-json cpu_store_seconds); the rest, {rest:.2f} s, is "
                       f"{rest / floor['floor_cpu']:.1f} x the floor.")
        out.append("")
    out += failures(recs)
    return out


def seeding_table(size, piece, recs):
    runs = max(r["run"] for r in recs)
    out = [f"### seeding: {human(size)}, {human(piece)} pieces, one seeder "
           f"(median of {runs} run{'s' if runs > 1 else ''})",
           "",
           "| leecher | seeder | ok | wall s | MiB/s | done s | seeder CPU s | wall / from libtorrent "
           "| done / from libtorrent |",
           "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    leechers = list(dict.fromkeys(r["client"] for r in recs))
    seeders = list(dict.fromkeys(r["seeder"] for r in recs))
    for lc in leechers:
        good = {s: [r for r in recs if r["client"] == lc and r["seeder"] == s and r["ok"]]
                for s in seeders}
        base = median(good.get("libtorrent", []), "wall")
        base_done = median(good.get("libtorrent", []), "done")
        for s in seeders:
            g = good[s]
            n = sum(1 for r in recs if r["client"] == lc and r["seeder"] == s)
            wall = median(g, "wall")
            out.append(f"| {lc} | {s} | {len(g)}/{n} | {fmt(wall)} | "
                       f"{fmt(ratio(size / MIB, wall), 1)} | {fmt(median(g, 'done'))} | "
                       f"{fmt(median(g, 'seeder_cpu'))} | {fmt(ratio(wall, base))} | "
                       f"{fmt(ratio(median(g, 'done'), base_done))} |")
    out += ["", "done: the leecher has every byte (its completion hook). wall adds the "
            "leecher's own exit, which the seeder cannot shorten: aria2c's stopped "
            "announce and shutdown wait for its 1-second event-loop timeouts, 1-2 s "
            "whichever seeder it used.", ""]
    out += failures(recs)
    return out


def summary_table(downloads, floors):
    """One row per download configuration: ptorrent's median wall time
    against the fastest other client's, its CPU outside write calls against
    the floor, its peak RSS; then how ptorrent's rate with the most seeders
    compares with fewer seeders for the same content and pieces."""
    out = ["### summary: ptorrent against the fastest other client", "",
           "| download | seeders | ptorrent wall s | fastest other | its wall s | "
           "ptorrent / fastest | ptorrent CPU outside writes / floor | ptorrent peak RSS MiB |",
           "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    rates = {}
    for (size, piece, seeders), recs in downloads.items():
        good = {}
        for r in recs:
            if r["ok"]:
                good.setdefault(r["client"], []).append(r)
        pt = median(good.get("ptorrent", []), "wall")
        others = {c: median(g, "wall") for c, g in good.items() if c != "ptorrent"}
        best = min(others, key=others.get) if others else None
        rest, floor = cpu_outside_writes(good.get("ptorrent", [])), floors.get(size)
        rest_x = rest / floor["floor_cpu"] if rest is not None and floor else None
        out.append(f"| {human(size)}, {human(piece)} pieces | {seeders} | {fmt(pt)} | "
                   f"{best or '-'} | {fmt(others.get(best))} | "
                   f"{fmt(ratio(pt, others.get(best)))} | {fmt(rest_x, 1)} | "
                   f"{fmt(median(good.get('ptorrent', []), 'rss_mib'), 0)} |")
        if pt:
            rates.setdefault((size, piece), {})[seeders] = size / MIB / pt
    out.append("")
    for (size, piece), by_n in rates.items():
        most = max(by_n)
        for n in sorted(by_n):
            if n < most:
                out.append(f"- ptorrent, {human(size)} with {human(piece)} pieces: "
                           f"{by_n[most]:.1f} MiB/s from {most} seeders, "
                           f"{by_n[n]:.1f} MiB/s from {n} "
                           f"({by_n[most] / by_n[n]:.2f} of it).")
    if out[-1]:
        out.append("")
    return out


def floor_table(floors):
    out = ["### floor: this machine at best (one core, loopback)", "",
           "| bytes | SHA-1 CPU s | SHA-1 MiB/s | one TCP stream s | TCP MiB/s | receive CPU s | "
           "floor CPU s (SHA-1 + receive) | store CPU s | floor + store CPU s |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for f in floors:
        mib = f["size"] / MIB
        out.append(f"| {human(f['size'])} | {f['sha1_cpu']:.2f} | {mib / f['sha1_cpu']:.0f} | "
                   f"{f['tcp_wall']:.2f} | {mib / f['tcp_wall']:.0f} | {f['tcp_recv_cpu']:.2f} | "
                   f"{f['floor_cpu']:.2f} | {fmt(f.get('store_cpu'))} | "
                   f"{fmt(f.get('store_floor_cpu'))} |")
    out += ["", "SHA-1 through OpenSSL (hashlib), reads not timed; the TCP stream is sendfile() "
            "to a receiver that drops the bytes; receive CPU is that receiver's user + system "
            "time; median of 3 streams. Store: the same bytes written once into a new file where the clients "
            "write, 1 MiB write() calls and an fsync, median of 3 (on a VM that gives freed "
            "memory back to its host, first writes to a page fault in the host: that "
            "dominates this figure).", ""]
    return out


def cmd_tables(args):
    with open(args.results) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    floors = {r["size"]: r for r in recs if r["table"] == "floor"}
    lines = floor_table(floors.values()) if floors else []
    configs = {}
    for r in recs:
        if r["table"] == "download":
            configs.setdefault(("download", r["size"], r["piece"], r["seeders"]), []).append(r)
        elif r["table"] == "seeding":
            configs.setdefault(("seeding", r["size"], r["piece"], 0), []).append(r)
    for (table, size, piece, seeders), group in configs.items():
        if table == "download":
            lines += download_table(size, piece, seeders, group, floors.get(size))
        else:
            lines += seeding_table(size, piece, group)
    downloads = {key[1:]: group for key, group in configs.items() if key[0] == "download"}
    if downloads:
        lines += summary_table(downloads, floors)
    print("\n".join(lines))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--results", required=True)
    r.add_argument("--table", choices=("download", "seeding"), required=True)
    r.add_argument("--size", type=int, required=True)
    r.add_argument("--piece", type=int, required=True)
    r.add_argument("--seeders", type=int, default=1)
    r.add_argument("--client", required=True)
    r.add_argument("--seeder")
    r.add_argument("--run", type=int, required=True)
    r.add_argument("--rc", type=int, required=True)
    r.add_argument("--cmp-ok", type=int, choices=(0, 1), required=True)
    r.add_argument("--time-file", required=True)
    r.add_argument("--start", type=float, required=True)
    r.add_argument("--done-file")
    r.add_argument("--stats-json")
    r.add_argument("--seeder-cpu", type=float)
    fl = sub.add_parser("floor")
    fl.add_argument("--results", required=True)
    fl.add_argument("--json", required=True)
    t = sub.add_parser("tables")
    t.add_argument("--results", required=True)
    args = ap.parse_args()
    return {"record": cmd_record, "floor": cmd_floor, "tables": cmd_tables}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
