#!/usr/bin/python3
"""What this machine can do at best with a file, for scripts/bench.sh.

  bench_floor.py FILE [STORE_DIR]

Prints one JSON object (one line) with measurements over FILE's bytes:

  sha1_*  SHA-1 of the whole file on one core, through hashlib, which is
          OpenSSL's SHA-1 (the one ptorrent links). Only the hashing is
          timed, not the reads that feed it.
  tcp_*   one TCP stream over 127.0.0.1 carrying as many bytes: a child
          process sends the file with sendfile(), this process receives it
          into one 1 MiB buffer and drops it. tcp_recv_cpu is the receiver's
          user+system time: the one copy out of the kernel that any
          downloader pays. tcp_send_cpu is the sender's. Each is the median
          of TCP_TRIES streams: one stream's receive CPU varied by half
          between two runs of bench.sh, and it is the floor's denominator.
  store_* (with STORE_DIR) writing as many bytes into a new file in
          STORE_DIR (where the clients download to), 1 MiB write() calls
          from memory, then fsync; only those calls are timed. Done
          STORE_TRIES times, the file removed and the machine left idle
          STORE_PAUSE seconds in between, as between two downloads; the
          median is kept. On a virtual machine that hands freed memory back
          to its host (Linux free page reporting), the first write to every
          page faults in the host, and that dominates this figure.

A downloader must at least receive every byte and hash it, so
floor_cpu = sha1_cpu + tcp_recv_cpu is the CPU floor that bench.sh compares
ptorrent's CPU time with; it leaves the store out, so it is a true lower
bound. store_floor_cpu = floor_cpu + store_cpu adds the one write that every
downloader must also make.
"""

import hashlib
import json
import os
import resource
import socket
import statistics
import sys
import time

CHUNK = 1 << 20  # receive buffer: large, so per-call overhead is negligible
STORE_TRIES = 3
TCP_TRIES = 3
STORE_PAUSE = 3.0  # seconds: free page reporting acts 2 s after a free


def cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def sha1_floor(path):
    """Hashes the file 1 MiB at a time, timing only the hash updates: the
    read() into the buffer is a copy that a downloader does not make (it
    hashes what it received), so it stays out of the figure."""
    h = hashlib.sha1()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    wall = cpu = 0.0
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            w0, c0 = time.perf_counter(), time.thread_time()
            h.update(view[:n])
            cpu += time.thread_time() - c0
            wall += time.perf_counter() - w0
    return {"sha1_wall": wall, "sha1_cpu": cpu, "sha1_hex": h.hexdigest()}


def send_file(path, port):
    """The child: connect, sendfile() everything, close."""
    with socket.create_connection(("127.0.0.1", port)) as s, open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        off = 0
        while off < size:
            off += os.sendfile(s.fileno(), f.fileno(), off, size - off)


def tcp_floor(path):
    size = os.path.getsize(path)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]
    cc0 = cpu_children()
    w0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            lsock.close()
            send_file(path, port)
        finally:
            os._exit(0)
    conn, _ = lsock.accept()
    c0 = cpu_self()
    buf = bytearray(CHUNK)
    got = 0
    while True:
        n = conn.recv_into(buf)
        if n == 0:
            break
        got += n
    c1, w1 = cpu_self(), time.perf_counter()
    conn.close()
    lsock.close()
    _, status = os.waitpid(pid, 0)
    if got != size or status != 0:
        raise SystemExit(f"bench_floor: received {got} of {size} bytes (sender status {status})")
    return {"tcp_wall": w1 - w0, "tcp_recv_cpu": c1 - c0, "tcp_send_cpu": cpu_children() - cc0}


def tcp_floor_median(path):
    """tcp_floor TCP_TRIES times; the median of each figure."""
    tries = [tcp_floor(path) for _ in range(TCP_TRIES)]
    return {k: statistics.median(t[k] for t in tries) for k in tries[0]}


def store_once(path, size, block):
    """Writes size bytes (block, repeated) to a new file; CPU of the writes
    and the fsync only."""
    cpu = 0.0
    w0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        left = size
        while left:
            c0 = time.thread_time()
            n = os.write(fd, block[:min(left, len(block))])
            cpu += time.thread_time() - c0
            left -= n
        c0 = time.thread_time()
        os.fsync(fd)
        cpu += time.thread_time() - c0
    finally:
        os.close(fd)
        os.unlink(path)
    return cpu, time.perf_counter() - w0


def store_floor(src, store_dir):
    """The write a downloader makes: the file's first MiB stands for its
    content (the bytes' values do not change what a write costs)."""
    size = os.path.getsize(src)
    with open(src, "rb") as f:
        block = memoryview(f.read(CHUNK))
    path = os.path.join(store_dir, f".bench_floor.{os.getpid()}")
    tries = []
    for i in range(STORE_TRIES):
        if i:
            time.sleep(STORE_PAUSE)
        tries.append(store_once(path, size, block))
    return {"store_cpu": statistics.median(t[0] for t in tries),
            "store_wall": statistics.median(t[1] for t in tries)}


def main():
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    path = sys.argv[1]
    out = {"size": os.path.getsize(path)}
    out.update(sha1_floor(path))
    out.update(tcp_floor_median(path))
    out["floor_cpu"] = out["sha1_cpu"] + out["tcp_recv_cpu"]
    if len(sys.argv) == 3:
        time.sleep(STORE_PAUSE)  # the memory the reads above freed, as for a client
        out.update(store_floor(path, sys.argv[2]))
        out["store_floor_cpu"] = out["floor_cpu"] + out["store_cpu"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
