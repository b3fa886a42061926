#!/bin/sh
# Installs what building and testing ptorrent need. Idempotent and quick when
# everything is present: it checks commands and headers first and runs
# `apt-get update` only when it has something to install.
set -eu

PKGS="gcc make pkg-config libcurl4-openssl-dev libssl-dev libcunit1-dev opentracker \
python3-libtorrent aria2 transmission-cli mktorrent time"

missing=""
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_hdr() { [ -e "/usr/include/$1" ] || [ -e "/usr/local/include/$1" ]; }

have_cmd cc || have_cmd gcc || missing="$missing gcc"
have_cmd make || missing="$missing make"
have_cmd pkg-config || missing="$missing pkg-config"
have_hdr curl/curl.h || [ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] ||
    ls /usr/include/*/curl/curl.h >/dev/null 2>&1 || missing="$missing libcurl4-openssl-dev"
have_hdr openssl/evp.h || missing="$missing libssl-dev"
have_hdr CUnit/CUnit.h || missing="$missing libcunit1-dev"
have_cmd opentracker || missing="$missing opentracker"
have_cmd aria2c || missing="$missing aria2"
have_cmd transmission-cli || missing="$missing transmission-cli"
have_cmd mktorrent || missing="$missing mktorrent"
[ -x /usr/bin/time ] || missing="$missing time"
# python3-libtorrent installs for Debian's own interpreter, which may not be the
# first python3 on PATH (see shared/REAL-PEERS.md).
if [ ! -x /usr/bin/python3 ] || ! /usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1; then
    missing="$missing python3-libtorrent"
fi

[ -z "$missing" ] && exit 0

if ! have_cmd apt-get; then
    echo "deps.sh: missing:$missing" >&2
    if have_cmd pkg; then
        echo "deps.sh: on FreeBSD try: pkg install gmake pkgconf curl cunit opentracker" \
            "py311-libtorrent-rasterbar aria2 transmission-cli mktorrent" >&2
    fi
    echo "deps.sh: no apt-get here; install the packages above and run make again" >&2
    exit 1
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "deps.sh: installing:$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
