#!/usr/bin/python3
"""A loopback swarm of libtorrent peers for ptorrent's end-to-end tests.

Run it with /usr/bin/python3: python3-libtorrent is installed for Debian's
interpreter only.

  seed  --torrent T --data DIR --count N [--ports-file F] [--upload-rate KIB]
        Hosts N libtorrent sessions in this one process, each a separate peer
        with its own listen port on 127.0.0.1, all seeding T from DIR (the
        torrent's save path: DIR/NAME is the file or the top directory). Once
        every session has checked the data, is seeding and (if T has trackers)
        has been answered by a tracker, it writes the ports, one per line, to
        F (atomically) and keeps seeding and re-announcing until SIGTERM.

  leech --torrent T --out DIR [--peer HOST:PORT]... [--timeout S]
        Downloads T into DIR from the trackers and the given peers; exits 0
        when done, 1 on timeout or error.

Every wait is bounded. The process also exits when its parent dies, so a
test killed with SIGKILL does not leave seeders behind.
"""

import argparse
import os
import signal
import sys
import time

import libtorrent as lt

STOP = False  # set by SIGTERM/SIGINT; every loop checks it
POLL = 0.1  # seconds between status polls


def on_signal(_signum, _frame):
    global STOP
    STOP = True


def say(msg):
    print(f"lt_swarm[{os.getpid()}] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def orphaned(start_ppid):
    """True when the process that started us is gone (we were reparented)."""
    return os.getppid() != start_ppid


def make_session(upload_kib):
    """One libtorrent session set up for a swarm that lives on 127.0.0.1.

    The port is 0 so the kernel picks a free one: no races with other tests.
    """
    pack = {
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "127.0.0.1",
        # Every peer has the same IP on loopback.
        "allow_multiple_connections_per_ip": True,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        # Peers come and go on the same ports: keep retrying them quickly.
        "max_failcount": 100,
        "min_reconnect_time": 1,
        "announce_to_all_tiers": True,
        "announce_to_all_trackers": True,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.tracker_notification,
        "user_agent": "lt_swarm/libtorrent-" + lt.__version__,
    }
    ses = lt.session(pack)
    if upload_kib:
        # Loopback peers are in the unlimited "local" class by default; put
        # every address in the global class so the limit applies.
        f = lt.ip_filter()
        f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        ses.set_peer_class_filter(f)
        ses.apply_settings({"upload_rate_limit": upload_kib * 1024})
    return ses


def add_torrent(ses, ti, save_path):
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = save_path
    # Start now, not when the session's queue gets round to it.
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    return ses.add_torrent(atp)


def drain_alerts(ses, tag, replied):
    """Logs errors and notes which sessions got a tracker reply."""
    for a in ses.pop_alerts():
        if isinstance(a, lt.tracker_reply_alert):
            replied.add(tag)
        elif isinstance(a, (lt.tracker_error_alert, lt.torrent_error_alert,
                            lt.file_error_alert, lt.listen_failed_alert,
                            lt.hash_failed_alert)):
            say(f"session {tag}: {a.message()}")


def parse_peer(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def write_ports(path, ports):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("".join(f"{p}\n" for p in ports))
    os.replace(tmp, path)


def cmd_seed(args):
    ppid = os.getppid()
    ti = lt.torrent_info(args.torrent)
    has_trackers = len(list(ti.trackers())) > 0
    sessions = []
    for i in range(args.count):
        ses = make_session(args.upload_rate)
        sessions.append((i, ses, add_torrent(ses, ti, args.data)))
    ports = [ses.listen_port() for _, ses, _ in sessions]
    say(f"{args.count} seeders on ports {ports}")

    # Checking is bounded: a session that is not seeding by then has data
    # that does not match the torrent, or none at all. A session that sits in
    # "downloading" for a few seconds after its check has found missing or
    # wrong pieces: give up early with a clear message.
    replied = set()
    deadline = time.monotonic() + args.ready_timeout
    incomplete_since = {}
    while not STOP:
        seeding = 0
        for i, ses, h in sessions:
            drain_alerts(ses, i, replied)
            st = h.status()
            if st.errc.value() != 0:
                say(f"session {i}: error {st.errc.message()}")
                return 1
            if st.is_seeding:
                seeding += 1
                incomplete_since.pop(i, None)
            elif st.state == lt.torrent_status.downloading:
                first = incomplete_since.setdefault(i, time.monotonic())
                if time.monotonic() - first > 3:
                    say(f"session {i}: data in {args.data} is incomplete or wrong "
                        f"({st.num_pieces}/{ti.num_pieces()} pieces good)")
                    return 1
        announced = not has_trackers or args.no_announce_wait or len(replied) == len(sessions)
        if seeding == len(sessions) and announced:
            break
        if time.monotonic() > deadline:
            say(f"not ready after {args.ready_timeout}s: {seeding}/{len(sessions)} seeding, "
                f"{len(replied)} announced")
            return 1
        if orphaned(ppid):
            return 1
        time.sleep(POLL)
    if STOP:
        return 0
    if args.ports_file:
        write_ports(args.ports_file, ports)
    say("all seeding")

    # Keep seeding. Re-announce now and then so a restarted tracker, or one
    # that forgot us, lists the seeders again without waiting half an hour.
    end = time.monotonic() + args.lifetime
    next_announce = time.monotonic() + args.reannounce
    while not STOP and time.monotonic() < end and not orphaned(ppid):
        for i, ses, h in sessions:
            drain_alerts(ses, i, replied)
        if has_trackers and args.reannounce > 0 and time.monotonic() >= next_announce:
            for _, _, h in sessions:
                h.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
            next_announce = time.monotonic() + args.reannounce
        time.sleep(POLL * 2)
    say("stopping")
    return 0


def cmd_leech(args):
    ppid = os.getppid()
    ti = lt.torrent_info(args.torrent)
    os.makedirs(args.out, exist_ok=True)
    ses = make_session(0)
    h = add_torrent(ses, ti, args.out)
    say(f"leecher on port {ses.listen_port()}")
    replied = set()
    deadline = time.monotonic() + args.timeout
    next_dial = 0.0
    while not STOP and not orphaned(ppid):
        drain_alerts(ses, 0, replied)
        st = h.status()
        if st.errc.value() != 0:
            say(f"error {st.errc.message()}")
            return 1
        if st.is_seeding or st.is_finished:
            say(f"finished: {st.total_wanted_done} bytes")
            # Pausing and destroying the session closes (and so flushes) the
            # files before we report success.
            h.pause()
            del h
            del ses
            return 0
        now = time.monotonic()
        if now > deadline:
            say(f"timeout after {args.timeout}s at {st.progress * 100:.1f}%, {st.num_peers} peers")
            return 1
        # Direct peers may not be up yet, or may drop us: dial them again
        # every few seconds while we have no peers.
        if args.peer and now >= next_dial and st.num_peers == 0:
            for p in args.peer:
                h.connect_peer(p)
            next_dial = now + 2
        time.sleep(POLL)
    return 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--torrent", required=True)
    s.add_argument("--data", required=True, help="save path: DIR/NAME holds the content")
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--ports-file")
    s.add_argument("--upload-rate", type=int, default=0, metavar="KIB", help="per session, KiB/s")
    s.add_argument("--ready-timeout", type=float, default=120)
    s.add_argument("--no-announce-wait", action="store_true",
                   help="report ready without waiting for a tracker reply")
    s.add_argument("--reannounce", type=float, default=5, metavar="S")
    s.add_argument("--lifetime", type=float, default=3600, metavar="S",
                   help="exit after this long even without SIGTERM")
    l = sub.add_parser("leech")
    l.add_argument("--torrent", required=True)
    l.add_argument("--out", required=True)
    l.add_argument("--peer", action="append", type=parse_peer, default=[])
    l.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    if args.mode == "seed" and not 1 <= args.count <= 64:
        ap.error("--count must be 1..64")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return cmd_seed(args) if args.mode == "seed" else cmd_leech(args)


if __name__ == "__main__":
    sys.exit(main())
