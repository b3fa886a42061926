#!/usr/bin/python3
"""A hostile BitTorrent peer, for fault-injection tests only.

It listens on 127.0.0.1:PORT, announces itself to --tracker (event=started,
so the tracker hands it to ptorrent), and for every connection does the BEP 3
handshake with its own peer id, sends a full bitfield and an unchoke, then
misbehaves as --mode says:

  good         serves the real bytes from --data (a control for the others)
  wrong-bytes  answers every request with random bytes (pieces fail the hash)
  oversize     answers the first request with a length prefix of 0x7fffffff
  bad-index    answers with a PIECE whose index is piece_count + 5
  wrong-hash   answers the handshake with a wrong info hash
  stall        after the unchoke never sends anything again, socket kept open
  choke-late   (not hostile: what libtorrent seeders do) once LATE_BATCH
               requests are in, sends a choke, then the real bytes of those
               requests anyway (blocks already in its send buffer); drops the
               requests that come while it chokes (BEP 3), then unchokes and
               serves as `good` from then on
  reorder      (not hostile: honest but awkward) serves the real bytes, but
               holds requests until REORDER_BATCH are in or REORDER_WAIT has
               passed since the first held one, then answers them, every
               other batch in reverse order; a HAVE of a random piece comes
               before every second PIECE and a keep-alive before every third;
               the batch goes out in writes of random length (1 to
               REORDER_CUT_MAX bytes) with TCP_NODELAY and 1 ms between them,
               so the remote's reads end anywhere in a message; a CANCEL
               drops a held request

--data is the content: for a single-file torrent the file (or a directory
holding it under the torrent's name); for a multi-file torrent the torrent's
top directory (or its parent).

--log gets one line per event, flushed at once:

  TIME EVENT [ARGS...] conn=N

TIME is Unix seconds with milliseconds; EVENT is one of listen, announce-ok,
announce-failed, connect, handshake-ok, handshake-bad, sent-wrong-hash,
interested, have I, request I B L, sent-piece I B L, sent-late I B L, choked,
dropped-while-choked I B L, unchoked (choke-late), reordered N and in-order N
(reorder: a batch of N requests answered), cancelled I B L (reorder: a held request
dropped), sent-oversize, bad-request I B L, bad-message, closed-by-remote, closed REASON (we closed: by-us, stop-or-timeout),
exit. handshake-bad says not-plaintext-bittorrent for what is most often an
MSE-encrypted handshake (libtorrent and aria2c retry with one after a failed
plaintext one), or info-hash HASH. (conn=N is absent on lines not
about one connection.)

The process exits on SIGTERM/SIGINT, after --lifetime seconds (300), or when
its parent dies.
"""

import argparse
import hashlib
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
import urllib.request

MODES = ("good", "wrong-bytes", "oversize", "bad-index", "wrong-hash", "stall", "choke-late",
         "reorder")
REAL_BYTES = ("good", "choke-late", "reorder")  # the modes that serve --data
LATE_BATCH = 8  # choke-late: requests held before the choke
CHOKE_SECONDS = 0.3  # choke-late: how long it chokes
REORDER_BATCH = 6  # reorder: requests held before answering them
REORDER_WAIT = 0.030  # reorder: longest hold (s) of a batch's first request
REORDER_CUT_MAX = 40000  # reorder: longest write (bytes)
REORDER_PAUSE = 0.001  # reorder: sleep (s) between two writes
PSTR = b"BitTorrent protocol"
MAX_BLOCK = 128 * 1024  # longest request we serve; clients ask for 16 KiB
MAX_MESSAGE = MAX_BLOCK + 13  # longest message we accept from the remote
IO_TICK = 0.5  # socket timeout (s): how soon threads notice STOP

STOP = threading.Event()


# ---- bencode (decoding only what a .torrent needs) ----------------------

def bdecode(data, i=0):
    """Returns (value, end). Dicts become {key: value} with bytes keys, and
    the decoder records where the "info" value starts and ends."""
    c = data[i:i + 1]
    if c == b"i":
        j = data.index(b"e", i)
        return int(data[i + 1:j]), j + 1
    if c == b"l":
        out, i = [], i + 1
        while data[i:i + 1] != b"e":
            v, i = bdecode(data, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        out, i = {}, i + 1
        while data[i:i + 1] != b"e":
            k, i = bdecode(data, i)
            start = i
            v, i = bdecode(data, i)
            out[k] = v
            if k == b"info":
                out[b"__info_span"] = (start, i)
        return out, i + 1
    if c.isdigit():
        j = data.index(b":", i)
        n = int(data[i:j])
        return data[j + 1:j + 1 + n], j + 1 + n
    raise ValueError(f"bad bencode at offset {i}")


class Torrent:
    def __init__(self, path):
        raw = open(path, "rb").read()
        top, _ = bdecode(raw)
        s, e = top[b"__info_span"]
        self.info_hash = hashlib.sha1(raw[s:e]).digest()
        info = top[b"info"]
        self.name = info[b"name"].decode()
        self.piece_length = info[b"piece length"]
        self.piece_count = len(info[b"pieces"]) // 20
        if b"files" in info:
            self.multi = True
            self.files = [([p.decode() for p in f[b"path"]], f[b"length"]) for f in info[b"files"]]
        else:
            self.multi = False
            self.files = [([], info[b"length"])]
        self.total = sum(n for _, n in self.files)

    def piece_size(self, index):
        if index == self.piece_count - 1:
            return self.total - self.piece_length * (self.piece_count - 1)
        return self.piece_length


class Content:
    """Reads torrent bytes by offset from the files under --data."""

    def __init__(self, torrent, data):
        if torrent.multi:
            root = os.path.join(data, torrent.name)
            root = root if os.path.isdir(root) else data
            self.paths = [os.path.join(root, *p) for p, _ in torrent.files]
        else:
            f = os.path.join(data, torrent.name) if os.path.isdir(data) else data
            self.paths = [f]
        self.sizes = [n for _, n in torrent.files]
        self.lock = threading.Lock()

    def read(self, offset, length):
        out = bytearray()
        with self.lock:
            for path, size in zip(self.paths, self.sizes):
                if length == 0:
                    break
                if offset >= size:
                    offset -= size
                    continue
                n = min(length, size - offset)
                with open(path, "rb") as f:
                    f.seek(offset)
                    out += f.read(n)
                length -= n
                offset = 0
        return bytes(out)


# ---- logging ------------------------------------------------------------

class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1) if path else sys.stderr
        self.lock = threading.Lock()

    def __call__(self, event, *args, conn=None):
        parts = [f"{time.time():.3f}", event] + [str(a) for a in args]
        if conn is not None:
            parts.append(f"conn={conn}")
        with self.lock:
            self.f.write(" ".join(parts) + "\n")
            self.f.flush()


# ---- tracker ------------------------------------------------------------

def announce(url, torrent, peer_id, port, event, timeout):
    q = {"peer_id": peer_id, "port": str(port), "uploaded": "0", "downloaded": "0",
         "left": "0", "compact": "1", "event": event}
    sep = "&" if "?" in url else "?"
    full = (url + sep + "info_hash=" + urllib.parse.quote_from_bytes(torrent.info_hash)
            + "&" + urllib.parse.urlencode(q))
    body = urllib.request.urlopen(full, timeout=timeout).read()
    if b"failure reason" in body:
        raise RuntimeError(body.decode("latin-1"))


def announce_started(args, torrent, peer_id, log):
    """Retries for up to 10 s: the tracker may still be starting."""
    last = None
    for _ in range(20):
        if STOP.is_set():
            return
        try:
            announce(args.tracker, torrent, peer_id, args.port, "started", 3)
            log("announce-ok", args.tracker)
            return
        except Exception as e:  # any failure: log it and retry
            last = e
            time.sleep(0.5)
    log("announce-failed", repr(last).replace(" ", "_"))


# ---- peer wire ----------------------------------------------------------

class Closed(Exception):
    pass


def recv_exact(sock, n, deadline=None):
    buf = bytearray()
    while len(buf) < n:
        if STOP.is_set() or (deadline and time.monotonic() > deadline):
            raise TimeoutError
        try:
            chunk = sock.recv(n - len(buf))
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            raise Closed from None
        if not chunk:
            raise Closed
        buf += chunk
    return bytes(buf)


def bitfield(torrent):
    n = torrent.piece_count
    bits = bytearray(b"\xff" * ((n + 7) // 8))
    if n % 8:
        bits[-1] = (0xff << (8 - n % 8)) & 0xff  # spare bits must be zero
    return bytes(bits)


def send(sock, data):
    """sendall with a generous timeout: the remote may be slow to read, and
    the short receive tick must not pass for a closed connection."""
    sock.settimeout(30)
    try:
        sock.sendall(data)
    finally:
        sock.settimeout(IO_TICK)


def message(msg_id, payload=b""):
    return struct.pack(">IB", 1 + len(payload), msg_id) + payload


def serve(conn_id, sock, args, torrent, content, peer_id, log):
    sock.settimeout(IO_TICK)
    try:
        hs = recv_exact(sock, 68, time.monotonic() + 30)
        if hs[0] != 19 or hs[1:20] != PSTR:
            # Most often an MSE-encrypted handshake: we speak plaintext only.
            log("handshake-bad", "not-plaintext-bittorrent", conn=conn_id)
            log("closed", "by-us", conn=conn_id)
            return
        if hs[28:48] != torrent.info_hash:
            log("handshake-bad", "info-hash", hs[28:48].hex(), conn=conn_id)
            log("closed", "by-us", conn=conn_id)
            return
        log("handshake-ok", hs[48:68].hex(), conn=conn_id)
        ih = torrent.info_hash
        if args.mode == "wrong-hash":
            ih = hashlib.sha1(b"not the torrent" + ih).digest()
        send(sock, bytes([19]) + PSTR + bytes(8) + ih + peer_id)
        if args.mode == "wrong-hash":
            log("sent-wrong-hash", ih.hex(), conn=conn_id)
        else:
            send(sock, message(5, bitfield(torrent)) + message(1))
        answered = False
        held = []  # choke-late: requests not answered yet; None once done
        batch = Reorder(conn_id, sock, torrent, content, log)
        if args.mode == "reorder":
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            batch.wait()
            (length,) = struct.unpack(">I", recv_exact(sock, 4))
            if length == 0:
                continue  # keep-alive
            if length > MAX_MESSAGE:
                log("bad-message", "length", length, conn=conn_id)
                log("closed", "by-us", conn=conn_id)
                return
            body = recv_exact(sock, length)
            msg_id = body[0]
            if msg_id == 2:
                log("interested", conn=conn_id)
            elif msg_id == 4 and length == 5:
                log("have", struct.unpack(">I", body[1:])[0], conn=conn_id)
            elif msg_id == 6 and length == 13:
                index, begin, blen = struct.unpack(">III", body[1:])
                log("request", index, begin, blen, conn=conn_id)
                if args.mode == "reorder":
                    batch.add((index, begin, blen))
                    continue
                if args.mode == "choke-late" and held is not None:
                    held.append((index, begin, blen))
                    if len(held) == LATE_BATCH:
                        choke_then_send(conn_id, sock, torrent, content, log, held)
                        held = None
                    continue
                answered = answer(conn_id, sock, args, torrent, content, log,
                                  index, begin, blen, answered)
            elif msg_id == 8 and length == 13:
                batch.cancel(struct.unpack(">III", body[1:]))
    except Closed:
        log("closed-by-remote", conn=conn_id)
    except TimeoutError:
        log("closed", "stop-or-timeout", conn=conn_id)
    except OSError as e:
        log("closed-by-remote", type(e).__name__, conn=conn_id)
    finally:
        sock.close()


def choke_then_send(conn_id, sock, torrent, content, log, held):
    """choke-late: a choke, the held requests' real bytes all the same (the
    remote was told they were dropped), then an unchoke."""
    send(sock, message(0))
    log("choked", conn=conn_id)
    for index, begin, blen in held:
        data = content.read(index * torrent.piece_length + begin, blen)
        send(sock, message(7, struct.pack(">II", index, begin) + data))
        log("sent-late", index, begin, blen, conn=conn_id)
    drop_requests(conn_id, sock, log, CHOKE_SECONDS)
    send(sock, message(1))
    log("unchoked", conn=conn_id)


def drop_requests(conn_id, sock, log, seconds):
    """Reads and drops whatever comes for `seconds` (requests sent before the
    remote saw our choke); a message is read whole once it has begun."""
    end = time.monotonic() + seconds
    while True:
        ready, _, _ = select.select([sock], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            return
        (length,) = struct.unpack(">I", recv_exact(sock, 4))
        body = recv_exact(sock, length) if length else b""
        if body[:1] == b"\x06" and length == 13:
            log("dropped-while-choked", *struct.unpack(">III", body[1:]), conn=conn_id)


class Reorder:
    """reorder: the requests held (in arrival order) and when they are due.
    Empty, as in every other mode, it does nothing."""

    def __init__(self, conn_id, sock, torrent, content, log):
        self.conn_id, self.sock, self.torrent, self.content, self.log = (
            conn_id, sock, torrent, content, log)
        self.held = []
        self.due = 0.0  # monotonic time the held batch must go out
        self.blocks = 0  # blocks sent on this connection
        self.batches = 0  # batches answered on this connection
        self.rng = random.Random(conn_id)  # the same cuts on every run

    def add(self, req):
        if not self.held:
            self.due = time.monotonic() + REORDER_WAIT
        self.held.append(req)
        if len(self.held) == REORDER_BATCH:
            self.flush()

    def cancel(self, req):
        if req in self.held:
            self.held.remove(req)
            self.log("cancelled", *req, conn=self.conn_id)

    def wait(self):
        """Before a read: answers the batch if nothing arrives before it is
        due (a message that has begun to arrive is read first)."""
        if not self.held:
            return
        left = max(0.0, self.due - time.monotonic())
        ready, _, _ = select.select([self.sock], [], [], left)
        if not ready:
            self.flush()

    def flush(self):
        """Every other batch in reverse order; all of it as one byte stream
        cut at random places (see send_cut)."""
        n, batch, self.held = len(self.held), self.held, []
        self.batches += 1
        if self.batches % 2:
            batch = batch[::-1]
        stream = b""
        for index, begin, blen in batch:
            if not valid_request(self.torrent, index, begin, blen):
                self.log("bad-request", index, begin, blen, conn=self.conn_id)
                continue
            stream += self.block_bytes(index, begin, blen)
            self.log("sent-piece", index, begin, blen, conn=self.conn_id)
        self.send_cut(stream)
        self.log("reordered" if self.batches % 2 else "in-order", n, conn=self.conn_id)

    def block_bytes(self, index, begin, blen):
        """A PIECE, after a HAVE of a random piece every second block and a
        keep-alive every third."""
        self.blocks += 1
        out = b""
        if self.blocks % 2 == 0:
            out += message(4, struct.pack(">I", self.rng.randrange(self.torrent.piece_count)))
        if self.blocks % 3 == 0:
            out += bytes(4)
        data = self.content.read(index * self.torrent.piece_length + begin, blen)
        return out + message(7, struct.pack(">II", index, begin) + data)

    def send_cut(self, stream):
        """Writes stream in pieces of 1..REORDER_CUT_MAX bytes, REORDER_PAUSE
        apart (TCP_NODELAY is on), so the remote's reads end anywhere: inside
        a header, inside a block, just after one."""
        at = 0
        while at < len(stream):
            cut = self.rng.randint(1, REORDER_CUT_MAX)
            send(self.sock, stream[at:at + cut])
            at += cut
            time.sleep(REORDER_PAUSE)


def valid_request(torrent, index, begin, blen):
    return (0 <= index < torrent.piece_count and 0 < blen <= MAX_BLOCK
            and begin + blen <= torrent.piece_size(index))


def answer(conn_id, sock, args, torrent, content, log, index, begin, blen, answered):
    """Acts on one REQUEST as the mode says; returns whether we answered."""
    mode = args.mode
    if mode == "stall" or mode == "wrong-hash":
        return answered
    if mode == "oversize":
        if not answered:
            # A message "2 GiB long" of type PIECE, then a little of it.
            send(sock, struct.pack(">IB", 0x7fffffff, 7) + bytes(16384))
            log("sent-oversize", conn=conn_id)
        return True
    if not valid_request(torrent, index, begin, blen):
        log("bad-request", index, begin, blen, conn=conn_id)
        return answered
    if mode in REAL_BYTES:
        data = content.read(index * torrent.piece_length + begin, blen)
    else:
        data = random.randbytes(blen)
    if mode == "bad-index":
        index = torrent.piece_count + 5
    send(sock, message(7, struct.pack(">II", index, begin) + data))
    log("sent-piece", index, begin, blen, conn=conn_id)
    return True


# ---- main ---------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=MODES, required=True)
    ap.add_argument("--tracker", help="announce URL; no announce when omitted")
    ap.add_argument("--log")
    ap.add_argument("--lifetime", type=float, default=300)
    args = ap.parse_args()

    torrent = Torrent(args.torrent)
    content = Content(torrent, args.data)
    if args.mode in REAL_BYTES:
        missing = [p for p in content.paths if not os.path.isfile(p)]
        if missing:
            ap.error(f"--data: missing {missing[0]}")
    log = Log(args.log)
    peer_id = b"-FP0001-" + bytes(random.choice(b"0123456789abcdef") for _ in range(12))
    ppid = os.getppid()

    def on_signal(_s, _f):
        STOP.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", args.port))
    lsock.listen(16)
    lsock.settimeout(0.2)
    log("listen", args.port, args.mode, torrent.info_hash.hex())
    if args.tracker:
        threading.Thread(target=announce_started, args=(args, torrent, peer_id, log),
                         daemon=True).start()

    end = time.monotonic() + args.lifetime
    conn_id = 0
    threads = []
    while not STOP.is_set() and time.monotonic() < end and os.getppid() == ppid:
        try:
            sock, addr = lsock.accept()
        except socket.timeout:
            continue
        conn_id += 1
        log("connect", f"{addr[0]}:{addr[1]}", conn=conn_id)
        t = threading.Thread(target=serve, args=(conn_id, sock, args, torrent, content, peer_id, log),
                             daemon=True)
        t.start()
        threads.append(t)
    STOP.set()
    lsock.close()
    for t in threads:
        t.join(timeout=2 * IO_TICK + 1)
    if args.tracker:
        try:
            announce(args.tracker, torrent, peer_id, args.port, "stopped", 2)
        except Exception:
            pass  # best effort: the tracker may be gone already
    log("exit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
