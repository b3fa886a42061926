#!/usr/bin/env bash
# Runs ptorrent's end-to-end tests: every tests/e2e/t_*.sh, or the ones named
# on the command line (t_foo, t_foo.sh or a path).
#
#   PTORRENT=/abs/path/to/ptorrent tests/e2e/run.sh [TEST...]
#
# Each test runs as `timeout -k 10 N bash SCRIPT` (N = 300 s, or the number in
# a `# timeout: N` line of the script, or $E2E_TIMEOUT), with stdin from
# /dev/null, its output in a log file, and a fresh directory in $E2E_TMP (also
# its working directory). A test passes with exit 0 and is skipped with exit
# 77. The temporary directory and log of a test that passed are removed;
# those of a failed test are kept and named. E2E_KEEP=1 keeps everything.
# The last line is `e2e: N passed, N failed` (`, N skipped` when some were).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEFAULT_TIMEOUT=${E2E_TIMEOUT:-300}
KILL_GRACE=10 # seconds between timeout's TERM and its KILL
TAIL_LINES=40

die() {
    echo "run.sh: $*" >&2
    exit 2
}

check_ptorrent() {
    [[ -n "${PTORRENT:-}" ]] ||
        die "PTORRENT is not set: give the absolute path of the ptorrent binary (make e2e does)"
    [[ "$PTORRENT" == /* ]] || die "PTORRENT must be an absolute path, got '$PTORRENT'"
    [[ -f "$PTORRENT" && -x "$PTORRENT" ]] || die "PTORRENT=$PTORRENT is not an executable file"
    export PTORRENT
}

# find_tests [TEST...]: fills TESTS with the scripts to run, as absolute
# paths. (Not in a subshell, so that die stops the runner.)
TESTS=()
find_tests() {
    local arg f
    if (($# == 0)); then
        for f in "$HERE"/t_*.sh; do
            [[ -e "$f" ]] && TESTS+=("$f")
        done
        return 0
    fi
    for arg in "$@"; do
        if [[ -f "$arg" ]]; then
            f=$(cd "$(dirname "$arg")" && pwd)/$(basename "$arg")
        else
            f="$HERE/$(basename "${arg%.sh}").sh"
        fi
        [[ -f "$f" ]] || die "no such test: $arg"
        TESTS+=("$f")
    done
}

# The per-test limit: a `# timeout: N` line in the script, else the default.
test_timeout() {
    local n
    n=$(sed -n 's/^# timeout: *\([0-9][0-9]*\) *$/\1/p' "$1" | head -n 1)
    echo "${n:-$DEFAULT_TIMEOUT}"
}

# release_mounts DIR LOG: unmounts whatever a test left mounted under DIR,
# so that rm -rf does not descend into a mount; returns 1 if there was any.
release_mounts() {
    local dir=$1 m found=0
    while read -r m; do
        [[ -n "$m" ]] || continue
        echo "run.sh: $m was left mounted by the test; unmounting it" >>"$2"
        umount "$m" 2>/dev/null || umount -l "$m" || true
        found=1
    done < <(findmnt -rn -o TARGET 2>/dev/null | grep -F "$dir/" | sort -r)
    ((found == 0))
}

# stop_leftovers PGID LOG: a test must stop all it started. Kills (by PID)
# what is still in its process group and returns 1 if there was anything.
stop_leftovers() {
    local pids=() pid
    mapfile -t pids < <(pgrep -g "$1" 2>/dev/null || true)
    ((${#pids[@]})) || return 0
    {
        echo "run.sh: processes left running by the test:"
        ps -o pid=,user=,args= -p "$(IFS=,; echo "${pids[*]}")" || true
    } >>"$2" 2>&1
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    return 1
}

CURRENT_TIMEOUT_PID=
on_interrupt() {
    trap - INT TERM
    if [[ -n "$CURRENT_TIMEOUT_PID" ]]; then
        # timeout passes TERM on to the test and its process group.
        kill -TERM "$CURRENT_TIMEOUT_PID" 2>/dev/null || true
        wait "$CURRENT_TIMEOUT_PID" 2>/dev/null || true
    fi
    echo "run.sh: interrupted; files kept in $RUN_DIR" >&2
    exit 130
}

# run_one SCRIPT: runs one test; prints its verdict line; returns 0 pass,
# 1 fail, 77 skip.
run_one() {
    local script=$1 name limit tmp logf start rc secs why
    name=$(basename "$script" .sh)
    limit=$(test_timeout "$script")
    tmp="$RUN_DIR/$name"
    logf="$RUN_DIR/$name.log"
    mkdir -p "$tmp"
    start=$SECONDS
    # In the background, so that this shell can react to Ctrl-C: timeout runs
    # the test in a process group of its own, which the terminal's SIGINT does
    # not reach. The process group id is timeout's PID.
    (cd "$tmp" && exec env E2E_TMP="$tmp" timeout -k "$KILL_GRACE" "$limit" \
        bash "$script" </dev/null >"$logf" 2>&1) &
    CURRENT_TIMEOUT_PID=$!
    rc=0
    wait "$CURRENT_TIMEOUT_PID" || rc=$?
    secs=$((SECONDS - start))
    case $rc in
    124 | 137) why="timed out after ${limit}s (exit $rc)" ;;
    *) why="exit code $rc" ;;
    esac
    # Leaks fail a test that otherwise passed (or skipped).
    if ! stop_leftovers "$CURRENT_TIMEOUT_PID" "$logf" && ((rc == 0 || rc == 77)); then
        rc=1
        why="left processes running"
    fi
    CURRENT_TIMEOUT_PID=
    if ! release_mounts "$tmp" "$logf" && ((rc == 0 || rc == 77)); then
        rc=1
        why="left a mount behind"
    fi

    case $rc in
    0)
        echo "PASS $name (${secs}s)"
        [[ "${E2E_KEEP:-0}" == 1 ]] || rm -rf "$tmp" "$logf"
        return 0
        ;;
    77)
        echo "SKIP $name (${secs}s): $(grep -m1 '^SKIP:' "$logf" | cut -c7- || true)"
        [[ "${E2E_KEEP:-0}" == 1 ]] || rm -rf "$tmp" "$logf"
        return 77
        ;;
    esac
    echo "FAIL $name (${secs}s)"
    echo "    $why"
    echo "    log: $logf   temp dir: $tmp"
    tail -n "$TAIL_LINES" "$logf" | sed 's/^/    | /'
    return 1
}

main() {
    check_ptorrent
    command -v timeout >/dev/null || die "timeout (coreutils) is required"
    local t passed=0 failed=0 skipped=0 rc
    find_tests "$@"
    ((${#TESTS[@]})) || die "no tests found in $HERE"
    RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ptorrent-e2e.XXXXXX")
    trap on_interrupt INT TERM
    for t in "${TESTS[@]}"; do
        rc=0
        run_one "$t" || rc=$?
        case $rc in
        0) passed=$((passed + 1)) ;;
        77) skipped=$((skipped + 1)) ;;
        *) failed=$((failed + 1)) ;;
        esac
    done
    if ((failed == 0)) && [[ "${E2E_KEEP:-0}" != 1 ]]; then
        rmdir "$RUN_DIR" 2>/dev/null || true
    else
        echo "logs and temp dirs kept in $RUN_DIR"
    fi
    if ((skipped)); then
        echo "e2e: $passed passed, $failed failed, $skipped skipped"
    else
        echo "e2e: $passed passed, $failed failed"
    fi
    ((failed == 0))
}

main "$@"
