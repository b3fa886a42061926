#!/usr/bin/python3
"""A loopback swarm of libtorrent peers for ptorrent's end-to-end tests.

Run it with /usr/bin/python3: python3-libtorrent is installed for Debian's
interpreter only.

  seed  --torrent T --data DIR --count N [--ports-file F] [--upload-rate KIB]
        [--check once|each|lazy]
        Hosts N (1..256) libtorrent sessions in this one process, each a
        separate peer with its own listen port on 127.0.0.1, all seeding T
        from DIR (the torrent's save path: DIR/NAME is the file or the top
        directory). Once every session is seeding and (if T has trackers) has
        been answered by a tracker, it writes the ports, one per line, to F
        (atomically) and keeps seeding and re-announcing until SIGTERM.
        --check says who hashes the data before seeding:
          once  (default) the first session checks it; the others start in
                libtorrent's seed mode with every piece marked verified, so
                they trust that one check and hash nothing, at start or
                while serving. N seeders cost one check, not N: 100 seeders
                of 256 MiB are ready in seconds, not minutes.
          each  every session checks the data (N checks; the old behaviour).
          lazy  no check at start: every session starts in seed mode with
                nothing verified and libtorrent hashes a piece the first time
                it serves it (if one fails, that session leaves seed mode and
                rechecks everything). Ready at once, but the seeders spend
                CPU hashing during the download.
        Seeders are light (see make_session): one disk thread and one hashing
        thread each, at most SEED_CONNECTIONS connections, and they ask the
        tracker for no peers: leechers dial them, they dial nobody. 256
        sessions fit in one process (about 2 threads and 6 descriptors each
        when idle; the soft descriptor limit is raised to the hard one).

  leech --torrent T --out DIR [--peer HOST:PORT]... [--timeout S]
        Downloads T into DIR from the trackers and the given peers; exits 0
        when done, 1 on timeout or error.

Every wait is bounded. The process also exits when its parent dies, so a
test killed with SIGKILL does not leave seeders behind.
"""

import argparse
import os
import resource
import signal
import sys
import time

import libtorrent as lt

STOP = False  # set by SIGTERM/SIGINT; every loop checks it
POLL = 0.1  # seconds between status polls
# Sessions per seed command. One process hosts them all: an idle seeding
# session costs about 2 threads, 6 file descriptors and 1 MiB, and 100 start
# in about 4 s on 2 cores (with --check once).
SEED_MAX = 256
# Connections per seeding session: the leechers of a test or a benchmark, a
# few at most (seeders dial nobody: see make_session).
SEED_CONNECTIONS = 64
CHECK_MODES = ("once", "each", "lazy")


def on_signal(_signum, _frame):
    global STOP
    STOP = True


def say(msg):
    print(f"lt_swarm[{os.getpid()}] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def orphaned(start_ppid):
    """True when the process that started us is gone (we were reparented)."""
    return os.getppid() != start_ppid


def raise_nofile_limit():
    """Soft RLIMIT_NOFILE up to the hard one: each session holds a few
    descriptors (listen socket, epoll, pipes, files) plus one per peer, and
    Debian's default soft limit, 1024, is reached at about 150 sessions."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            say(f"cannot raise the descriptor limit from {soft}: {e}")


def make_session(upload_kib, light=False):
    """One libtorrent session set up for a swarm that lives on 127.0.0.1.

    The port is 0 so the kernel picks a free one: no races with other tests.
    light: a seeder meant to be one of many; it gets one disk thread instead
    of libtorrent's 10 (its reads are copies from a mapped, cached file),
    one hashing thread, a modest connection limit, and asks trackers for no
    peers (num_want 0). Without that, seeders dial every seeder the tracker
    lists, both hang up ("upload to upload") and they dial again at each
    re-announce: 20 seeders burned a core doing it, 100 more than one. A
    leecher still finds them through the tracker, and connect_peer() still
    dials. Not for a leecher whose speed is measured.
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
    if light:
        pack.update({
            "aio_threads": 1,
            "hashing_threads": 1,
            "connections_limit": SEED_CONNECTIONS,
            "file_pool_size": 4,
            "alert_queue_size": 256,
            "num_want": 0,
        })
    ses = lt.session(pack)
    if upload_kib:
        # Loopback peers are in the unlimited "local" class by default; put
        # every address in the global class so the limit applies.
        f = lt.ip_filter()
        f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        ses.set_peer_class_filter(f)
        ses.apply_settings({"upload_rate_limit": upload_kib * 1024})
    return ses


def add_torrent(ses, ti, save_path, seed_mode=False, verified=False, pex=True):
    """Adds ti to ses, started. seed_mode: skip the initial hash check
    (libtorrent assumes the data is complete); verified: and mark every piece
    verified, so that it never hashes them (the caller has checked the data
    some other way). Without verified, seed mode hashes each piece the first
    time it is served. pex=False: no peer exchange (BEP 11) on this torrent.

    Seeders of a swarm must not use PEX: a libtorrent leecher connected to
    100 of them tells each about the other 99 (ut_pex), every seeder dials
    them all, both ends hang up (two seeds), and with min_reconnect_time 1
    they dial again: measured, 2,500 connections up at once and the whole
    ephemeral port range in TIME_WAIT within a minute, after which every
    client's connects failed (EADDRNOTAVAIL) for 60 s."""
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = save_path
    # Start now, not when the session's queue gets round to it.
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    if not pex:
        atp.flags |= lt.torrent_flags.disable_pex
    if seed_mode:
        atp.flags |= lt.torrent_flags.seed_mode
        if verified:
            atp.verified_pieces = [True] * ti.num_pieces()
    return ses.add_torrent(atp)


def data_present(ti, save_path):
    """None when every file of ti is under save_path with its full size, else
    what is wrong. Seed mode reads no file before a peer asks, so this is the
    cheap check it skips."""
    fs = ti.files()
    for i in range(fs.num_files()):
        if fs.file_flags(i) & lt.file_storage.flag_pad_file:
            continue
        path = os.path.join(save_path, fs.file_path(i))
        try:
            size = os.stat(path).st_size
        except OSError as e:
            return f"{path}: {e.strerror}"
        if size != fs.file_size(i):
            return f"{path}: {size} bytes, the torrent says {fs.file_size(i)}"
    return None


class Seeders:
    """count seeding sessions of one torrent, started as --check says.

    start() checks that the files are there (unless check is "each", where
    libtorrent's check says so); then poll(), called in the caller's loop,
    opens the sessions OPEN_BATCH at a time (so that the loop still notices
    a signal while 256 are being created) and reports progress until all
    seed. With check "once" the first session is opened alone and the
    others only once its check has passed. Not thread safe: one Python
    thread drives it.
    """

    OPEN_BATCH = 16  # sessions opened per poll(): about 0.5 s of work

    def __init__(self, ti, save_path, count, check, upload_kib=0, settings=None):
        self.ti = ti
        self.save_path = save_path
        self.count = count
        self.check = check
        self.upload_kib = upload_kib
        self.settings = settings or {}
        self.sessions = []  # (index, session, handle), in creation order
        self.incomplete_since = {}  # index -> when first seen "downloading"

    def _open(self, seed_mode, verified):
        ses = make_session(self.upload_kib, light=True)
        if self.settings:
            ses.apply_settings(self.settings)
        h = add_torrent(ses, self.ti, self.save_path, seed_mode, verified, pex=False)
        self.sessions.append((len(self.sessions), ses, h))

    def start(self):
        """Returns None, or what is wrong with the data."""
        if self.check == "each":
            return None
        return data_present(self.ti, self.save_path)

    def poll(self):
        """Opens the next sessions and looks at every open one. Returns
        (seeding, error): how many seed, and None or a message when a
        session failed or found its data incomplete (one that sits in
        "downloading" for 3 s after its check has found missing or wrong
        pieces)."""
        seeding = 0
        for i, _, h in self.sessions:
            st = h.status()
            if st.errc.value() != 0:
                return seeding, f"session {i}: error {st.errc.message()}"
            if st.is_seeding:
                seeding += 1
                self.incomplete_since.pop(i, None)
            elif st.state == lt.torrent_status.downloading:
                first = self.incomplete_since.setdefault(i, time.monotonic())
                if time.monotonic() - first > 3:
                    return seeding, (f"session {i}: data in {self.save_path} is incomplete or "
                                     f"wrong ({st.num_pieces}/{self.ti.num_pieces()} pieces good)")
        if self.check == "once":
            if not self.sessions:
                self._open(False, False)  # the one that checks
            elif seeding >= 1:
                # The check passed: the others trust it, and are counted by
                # a later poll once libtorrent says they seed.
                for _ in range(min(self.OPEN_BATCH, self.count - len(self.sessions))):
                    self._open(True, True)
        else:
            for _ in range(min(self.OPEN_BATCH, self.count - len(self.sessions))):
                self._open(self.check == "lazy", False)
        return seeding, None

    def stop(self):
        """Pauses every session at once, so their "stopped" announces go out
        together instead of one session teardown (up to stop_tracker_timeout)
        after another, then destroys them."""
        for _, ses, _ in self.sessions:
            ses.pause()
        self.sessions.clear()


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
    raise_nofile_limit()
    ti = lt.torrent_info(args.torrent)
    has_trackers = len(list(ti.trackers())) > 0
    t0 = time.monotonic()
    seeders = Seeders(ti, args.data, args.count, args.check, args.upload_rate)
    wrong = seeders.start()
    if wrong:
        say(f"data in {args.data} does not match {args.torrent}: {wrong}")
        return 1

    # Getting ready is bounded: a session that is not seeding by then has
    # data that does not match the torrent, or none at all.
    replied = set()
    deadline = time.monotonic() + args.ready_timeout
    while not STOP:
        for i, ses, _ in seeders.sessions:
            drain_alerts(ses, i, replied)
        seeding, err = seeders.poll()
        if err:
            say(err)
            return 1
        announced = not has_trackers or args.no_announce_wait or len(replied) == args.count
        if seeding == args.count and announced:
            break
        if time.monotonic() > deadline:
            say(f"not ready after {args.ready_timeout}s: {seeding}/{args.count} seeding, "
                f"{len(replied)} announced")
            return 1
        if orphaned(ppid):
            return 1
        time.sleep(POLL)
    if STOP:
        seeders.stop()
        return 0
    sessions = seeders.sessions
    ports = [ses.listen_port() for _, ses, _ in sessions]
    say(f"{args.count} seeders (check {args.check}) on ports {ports}")
    if args.ports_file:
        write_ports(args.ports_file, ports)
    say(f"all seeding, ready in {time.monotonic() - t0:.1f}s")

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
    seeders.stop()
    return 0


def cmd_leech(args):
    ppid = os.getppid()
    ti = lt.torrent_info(args.torrent)
    os.makedirs(args.out, exist_ok=True)
    ses = make_session(0)
    if args.encryption == "forced":
        # Only encrypted (MSE) handshakes, no plain-text retry; the payload
        # may still be plain text (allowed_enc_level stays "both").
        ses.apply_settings({"out_enc_policy": lt.enc_policy.forced,
                            "in_enc_policy": lt.enc_policy.forced})
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
    s.add_argument("--check", choices=CHECK_MODES, default="once",
                   help="who hashes the data before seeding (default once: the first session)")
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
    l.add_argument("--encryption", choices=("default", "forced"), default="default",
                   help="forced: dial with encrypted (MSE) handshakes only")
    args = ap.parse_args()
    if args.mode == "seed" and not 1 <= args.count <= SEED_MAX:
        ap.error(f"--count must be 1..{SEED_MAX}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return cmd_seed(args) if args.mode == "seed" else cmd_leech(args)


if __name__ == "__main__":
    sys.exit(main())
