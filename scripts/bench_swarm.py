#!/usr/bin/python3
"""libtorrent peers for scripts/bench.sh, built on scripts/lt_swarm.py.

Run it with /usr/bin/python3: python3-libtorrent is installed for Debian's
interpreter only.

  seed  --torrent T --data DIR --count N --ports-file F [--dial-file D]
        [--check once|each|lazy]
        N (1..256) libtorrent sessions in this process, each its own peer on
        127.0.0.1, seeding T from DIR (the save path). Once all seed, the
        ports go to F, one a line. --check is lt_swarm.py seed's: by default
        (once) the first session hash-checks the data and the others trust
        that check (libtorrent's seed mode, every piece marked verified), so
        no seeder hashes anything while the benchmark runs and 100 seeders
        of 256 MiB are ready in about 5 s; "each" has every session check
        (the old behaviour: N checks); "lazy" checks nothing at start and
        has the seeders hash each piece as they first serve it (CPU that
        then competes with the client being measured). The seeders are
        lt_swarm.py's light ones: one disk thread each, and they ask the
        tracker for no peers, so they never dial each other or the client
        unless told to (SIGUSR2). Then, until SIGTERM:
          SIGUSR1  every session re-announces now (after a tracker restart);
          SIGUSR2  every session dials each HOST:PORT line of D. This is how
                   transmission-cli gets its seeders: it drops loopback
                   peers handed out by a tracker (shared/REAL-PEERS.md).
        Unlike lt_swarm.py seed, which re-announces every few seconds on
        its own, these re-announce only when told, so the harness decides
        when the tracker's peer table is complete.

  leech --torrent T --out DIR --done-file F [--timeout S]
        Downloads T into DIR from the peers the tracker gives; at completion
        writes the time (time.time(), seconds) to F, closes the session and
        exits 0; 1 on timeout or error. lt_swarm.py leech does the same
        without the time stamp, which the benchmark needs to tell the
        download from the session's shutdown.

  tracker-wait --announce URL --info-hash HEX --seeders N [--leechers L]
               [--kick PID] [--timeout S]
        Waits until the tracker's scrape counts exactly N complete peers and
        L (default 0) incomplete ones. A scrape adds no peer, unlike a probe
        announce. With --kick, sends SIGUSR1 to PID (a seed process) at once
        and every second until then: a just restarted tracker may still be
        loading its whitelist and refuse the first announces.

  port
        Prints a TCP port that is free on every address (IPv4 and IPv6) and
        lies outside the kernel's ephemeral range (ip_local_port_range).
        Ports from that range, which binding port 0 hands out, can be taken
        by any outgoing connection between the check and the listener's
        bind; on a machine whose loopback is busy with other tests that
        happens (a client then fails with "address already in use").

The process exits when its parent dies, so seeders never outlive the bench.
"""

import argparse
import os
import random
import socket
import signal
import sys
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
POLL = 0.05  # seconds between status polls; small, as it adds to timings

STOP = False
REANNOUNCE = False
DIAL = False


def on_stop(_signum, _frame):
    global STOP
    STOP = True


def on_usr1(_signum, _frame):
    global REANNOUNCE
    REANNOUNCE = True


def on_usr2(_signum, _frame):
    global DIAL
    DIAL = True


def swarm():
    """lt_swarm.py as a module: its session settings are the loopback ones
    every test uses. Imported late so tracker-wait needs no libtorrent."""
    sys.path.insert(0, HERE)
    import lt_swarm  # pylint: disable=import-outside-toplevel
    return lt_swarm


def read_peers(path):
    peers = []
    with open(path) as f:
        for line in f:
            host, _, port = line.strip().rpartition(":")
            if host and port.isdigit():
                peers.append((host, int(port)))
    return peers


def cmd_seed(args):
    global REANNOUNCE, DIAL
    lts = swarm()
    lt = lts.lt
    ppid = os.getppid()
    lts.raise_nofile_limit()
    ti = lt.torrent_info(args.torrent)
    t0 = time.monotonic()
    # Outgoing connections in plain BitTorrent: transmission-cli drops an
    # encrypted handshake that settles on plaintext, and our seeders dial
    # it. Incoming connections accept both, as before.
    seeders = lts.Seeders(ti, args.data, args.count, args.check,
                          settings={"out_enc_policy": lt.enc_policy.disabled})
    wrong = seeders.start()
    if wrong:
        lts.say(f"data in {args.data} does not match {args.torrent}: {wrong}")
        return 1

    deadline = time.monotonic() + args.ready_timeout
    while not STOP:
        for i, ses, _ in seeders.sessions:
            lts.drain_alerts(ses, i, set())
        seeding, err = seeders.poll()
        if err:
            lts.say(err)
            return 1
        if seeding == args.count:
            break
        if time.monotonic() > deadline or lts.orphaned(ppid):
            lts.say(f"not ready: {seeding}/{args.count} seeding (data in {args.data} wrong?)")
            return 1
        time.sleep(POLL)
    if STOP:
        seeders.stop()
        return 0
    sessions = [(ses, h) for _, ses, h in seeders.sessions]
    ports = [ses.listen_port() for ses, _ in sessions]
    lts.say(f"bench seeders (check {args.check}) on ports {ports}")
    lts.write_ports(args.ports_file, ports)
    lts.say(f"all seeding, ready in {time.monotonic() - t0:.1f}s")

    while not STOP and not lts.orphaned(ppid):
        for i, (ses, _) in enumerate(sessions):
            lts.drain_alerts(ses, i, set())
        if REANNOUNCE:
            REANNOUNCE = False
            for _, h in sessions:
                h.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
        if DIAL:
            DIAL = False
            peers = read_peers(args.dial_file) if args.dial_file else []
            for _, h in sessions:
                for p in peers:
                    h.connect_peer(p)
            lts.say(f"dialled {peers}")
        time.sleep(POLL)
    sessions.clear()
    seeders.stop()
    return 0


def cmd_leech(args):
    lts = swarm()
    lt = lts.lt
    ppid = os.getppid()
    ti = lt.torrent_info(args.torrent)
    os.makedirs(args.out, exist_ok=True)
    ses = lts.make_session(0)
    h = lts.add_torrent(ses, ti, args.out)
    deadline = time.monotonic() + args.timeout
    while not STOP and not lts.orphaned(ppid):
        lts.drain_alerts(ses, 0, set())
        st = h.status()
        if st.errc.value() != 0:
            lts.say(f"error {st.errc.message()}")
            return 1
        if st.is_seeding or st.is_finished:
            done = time.time()
            # Destroying the session closes (so flushes) the files before
            # we report success.
            h.pause()
            del h
            del ses
            with open(args.done_file, "w") as f:
                f.write(f"{done:.6f}\n")
            return 0
        if time.monotonic() > deadline:
            lts.say(f"timeout after {args.timeout}s at {st.progress * 100:.1f}%, "
                    f"{st.num_peers} peers")
            return 1
        time.sleep(POLL)
    return 1


def bdecode(data, i=0):
    """Just enough bencode for a scrape reply: returns (value, next index)."""
    c = data[i:i + 1]
    if c == b"i":
        j = data.index(b"e", i)
        return int(data[i + 1:j]), j + 1
    if c in (b"l", b"d"):
        items, i = [], i + 1
        while data[i:i + 1] != b"e":
            v, i = bdecode(data, i)
            items.append(v)
        if c == b"l":
            return items, i + 1
        return dict(zip(items[::2], items[1::2])), i + 1
    j = data.index(b":", i)
    n = int(data[i:j])
    return data[j + 1:j + 1 + n], j + 1 + n


def scrape(announce, ih):
    url = announce.rsplit("/announce", 1)[0] + "/scrape"
    q = "info_hash=" + urllib.parse.quote_from_bytes(ih)
    with urllib.request.urlopen(f"{url}?{q}", timeout=2) as r:
        reply, _ = bdecode(r.read())
    entry = reply.get(b"files", {}).get(ih, {})
    return entry.get(b"complete", 0), entry.get(b"incomplete", 0)


def cmd_tracker_wait(args):
    ih = bytes.fromhex(args.info_hash)
    deadline = time.monotonic() + args.timeout
    last = None
    next_kick = 0.0
    while time.monotonic() < deadline:
        if args.kick and time.monotonic() >= next_kick:
            os.kill(args.kick, signal.SIGUSR1)
            next_kick = time.monotonic() + 1

        try:
            last = scrape(args.announce, ih)
            if last == (args.seeders, args.leechers):
                return 0
        except OSError as e:
            last = e
        time.sleep(POLL)
    print(f"tracker-wait: want ({args.seeders} complete, {args.leechers} incomplete), "
          f"last scrape: {last}",
          file=sys.stderr)
    return 1


def bindable(port):
    """True when nothing is bound to `port` on any IPv4 or IPv6 address."""
    for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((addr, port))
        except OSError:
            return False
    return True


def cmd_port(_args):
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    # Below the range when there is room (well above the ports daemons
    # usually take), else above it.
    lo, hi = (20000, low - 1) if low > 21000 else (high + 1, 65535)
    for _ in range(200):
        port = random.randint(lo, hi)
        if bindable(port):
            print(port)
            return 0
    print(f"port: no free port in {lo}-{hi}", file=sys.stderr)
    return 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--torrent", required=True)
    s.add_argument("--data", required=True, help="save path: DIR/NAME holds the content")
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--ports-file", required=True)
    s.add_argument("--dial-file")
    s.add_argument("--ready-timeout", type=float, default=300)
    s.add_argument("--check", choices=("once", "each", "lazy"), default="once",
                   help="who hashes the data before seeding (lt_swarm.py seed --check)")
    l = sub.add_parser("leech")
    l.add_argument("--torrent", required=True)
    l.add_argument("--out", required=True)
    l.add_argument("--done-file", required=True)
    l.add_argument("--timeout", type=float, default=600)
    w = sub.add_parser("tracker-wait")
    w.add_argument("--announce", required=True)
    w.add_argument("--info-hash", required=True)
    w.add_argument("--seeders", type=int, required=True)
    w.add_argument("--leechers", type=int, default=0)
    w.add_argument("--kick", type=int, metavar="PID")
    w.add_argument("--timeout", type=float, default=20)
    sub.add_parser("port")
    args = ap.parse_args()
    if args.mode == "seed" and not 1 <= args.count <= swarm().SEED_MAX:
        ap.error(f"--count must be 1..{swarm().SEED_MAX}")
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGUSR2, on_usr2)
    if args.mode == "seed":
        return cmd_seed(args)
    if args.mode == "leech":
        return cmd_leech(args)
    if args.mode == "port":
        return cmd_port(args)
    return cmd_tracker_wait(args)


if __name__ == "__main__":
    sys.exit(main())
