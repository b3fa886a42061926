#!/usr/bin/python3
"""Makes a v1 .torrent with libtorrent.create_torrent.

Unlike mktorrent 1.1 (pieces of 32 KiB and up), this takes any power-of-two
piece size from 16 KiB, and it keeps empty files. Run with /usr/bin/python3,
where python3-libtorrent is installed.

  mktorrent_lt.py [--piece-size BYTES] [-a URL[,URL...]]... [--private]
                  [--comment TEXT] [--creator TEXT] -o OUT PATH

Each -a is one tracker tier, in order; commas separate the URLs of one tier.
"""

import argparse
import os
import sys

import libtorrent as lt


def power_of_two(text):
    n = int(text, 0)
    if n < 16384 or n & (n - 1):
        raise argparse.ArgumentTypeError(f"piece size must be a power of two >= 16384, got {n}")
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--piece-size", type=power_of_two, default=262144, metavar="BYTES")
    ap.add_argument("-a", "--announce", action="append", default=[], metavar="URL[,URL...]")
    ap.add_argument("--private", action="store_true")
    ap.add_argument("--comment")
    ap.add_argument("--creator", help="'created by'; libtorrent's default when omitted")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("path")
    args = ap.parse_args()

    path = os.path.abspath(args.path)
    if not os.path.exists(path):
        ap.error(f"{args.path}: no such file or directory")
    fs = lt.file_storage()
    # libtorrent skips hidden files by default; tests want every file they made.
    lt.add_files(fs, path, lambda _p: True)
    if fs.num_files() == 0:
        ap.error(f"{args.path}: no files")
    # v1 only: ptorrent speaks BitTorrent v1, and v1-only torrents get no pad
    # files, so the file list is exactly what is on disk.
    ct = lt.create_torrent(fs, args.piece_size, flags=lt.create_torrent.v1_only)
    for tier, group in enumerate(args.announce):
        for url in filter(None, group.split(",")):
            ct.add_tracker(url, tier)
    if args.private:
        ct.set_priv(True)
    if args.comment is not None:
        ct.set_comment(args.comment)
    if args.creator is not None:
        ct.set_creator(args.creator)
    lt.set_piece_hashes(ct, os.path.dirname(path))
    data = lt.bencode(ct.generate())
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
