#!/usr/bin/python3
"""How long a seed takes to UNCHOKE a new leecher (a measurement, not a test).

usage: unchoke_probe.py TORRENT PORT N

Connects N times in turn to the seed on 127.0.0.1:PORT, each time with a
fresh peer id: BEP 3 handshake, INTERESTED, then reads until the UNCHOKE and
prints the milliseconds from INTERESTED to UNCHOKE (min, median, max). Each
connection is closed before the next; 0.3 s apart, past the seed's early
choke rounds (SESSION_EARLY_CHOKE_MS). Every read waits at most 5 s.
"""
import os
import socket
import struct
import sys
import time

import libtorrent as lt


def recv_exact(s, k):
    b = b""
    while len(b) < k:
        c = s.recv(k - len(b))
        if not c:
            raise EOFError("the seed closed the connection")
        b += c
    return b


def one(info_hash, port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"\x13BitTorrent protocol" + bytes(8) + info_hash + b"-PR0001-" + os.urandom(12))
        recv_exact(s, 68)
        s.sendall(struct.pack(">IB", 1, 2))  # INTERESTED
        t0 = time.monotonic()
        for _ in range(10000):  # bitfield, haves... then UNCHOKE
            n = struct.unpack(">I", recv_exact(s, 4))[0]
            if n == 0:
                continue
            if recv_exact(s, n)[0] == 1:
                return (time.monotonic() - t0) * 1000
    raise RuntimeError("no UNCHOKE")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    info_hash = bytes.fromhex(str(lt.torrent_info(sys.argv[1]).info_hash()))
    port, n = int(sys.argv[2]), int(sys.argv[3])
    ms = []
    for _ in range(n):
        ms.append(one(info_hash, port))
        time.sleep(0.3)
    ms.sort()
    print(f"unchoke ms: n={n} min={ms[0]:.1f} median={ms[n // 2]:.1f} max={ms[-1]:.1f}")


if __name__ == "__main__":
    main()
