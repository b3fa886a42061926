#!/usr/bin/env bash
# An honest but awkward peer (fake peer --mode reorder) as the only peer, no
# tracker: it holds requests in batches (6, or 30 ms) and answers every other
# batch in reverse order, puts a HAVE before every second PIECE and a
# keep-alive before every third, and writes each batch in writes of random
# length, 1 ms apart with TCP_NODELAY, so ptorrent's reads end anywhere in a
# message. ptorrent reads a block and the blocks it expects next in one call
# (peer.c, read_blocks); here its guesses are often wrong and the bytes read
# past a wrong one must be parsed again. The download must still complete
# byte-identical with nothing wasted and no piece failed, the fake must
# really have reordered, and ptorrent must have met a wrong guess.
# timeout: 90
set -euo pipefail
. "$(dirname "$0")/lib_dl.sh"
need_ptorrent

make_random_file "$E2E_TMP/seed/file.bin" $((8 * 1024 * 1024))
mk_torrent "$E2E_TMP/file.torrent" 262144 "$E2E_TMP/seed/file.bin"
start_fake_peer reorder "$E2E_TMP/file.torrent" "$E2E_TMP/seed"

S="$E2E_TMP/reorder.json"
dl reorder 60 -t "$E2E_TMP/file.torrent" -o "$E2E_TMP/out" -v -v \
    --peer "127.0.0.1:$FAKE_PORT" --stats-json "$S"
expect_rc reorder 0
assert_cmp "$E2E_TMP/seed/file.bin" "$E2E_TMP/out/file.bin"
stats_ok "$S" 's["result"] == "complete" and s["pieces_failed"] == 0' "complete, no failed piece"
stats_ok "$S" 's["bytes_wasted"] == 0' "no byte wasted"

biggest=$(awk '$2 == "reordered" { if ($3 > m) m = $3 } END { print m + 0 }' "$FAKE_LOG")
((biggest > 1)) || fail "the fake never reordered: the test proved nothing"
grep -q 'reading [0-9]* bytes again' "$E2E_TMP/reorder.err" ||
    fail "ptorrent never guessed the next block wrong: the test proved nothing"
batches=$(grep -c ' reordered ' "$FAKE_LOG" || true)
multi=$(awk '$2 == "reordered" && $3 > 1' "$FAKE_LOG" | wc -l)
sent=$(grep -c ' sent-piece ' "$FAKE_LOG" || true)
wrong=$(grep -c "bytes again" "$E2E_TMP/reorder.err" || true)
log "the fake sent $sent blocks in $batches batches ($multi of more than one block, up to $biggest reversed); ptorrent guessed wrong $wrong times"
