#!/usr/bin/env bash
# test_admin.sh - simcachectl, signals and the daemon's life cycle, from the
# operator's side: every admin command through simcachectl (text and
# --json, each JSON reply checked with python3's json module), simcachectl's
# exit codes (0 ok, 1 refused, 2 no daemon / bad usage), socket modes,
# `shutdown`, SIGTERM, SIGHUP reloading a config file, a second daemon on a
# live socket, a stale socket left by a crash.
#
#   test_admin.sh SIMCACHED SIMCACHECTL PUT_AND_FIND IT_CLIENT [PYTHON3]
#
# Exits 0 when every check passed, 1 otherwise (each failure is printed).
set -u

SIMCACHED=$1
CTL=$2
PUTFIND=$3
ITC=$4
PY=${5:-}
[ -n "$PY" ] || PY=$(command -v python3 || true)

T=$(mktemp -d /tmp/scit-sh-XXXXXX)
FAILS=0
CHECKS=0
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "${IT_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

ok()   { CHECKS=$((CHECKS + 1)); }
fail() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL: $*" >&2; }

# check DESC CONDITION-COMMAND...
check() {
    local desc=$1; shift
    if "$@"; then ok; else fail "$desc"; fi
}

# ctl WANT_RC DESC ARGS... : run simcachectl, keep stdout in $OUT, stderr in $ERR
ctl() {
    local want=$1 desc=$2; shift 2
    OUT=$("$CTL" "$@" 2>"$T/ctl.err"); local rc=$?
    ERR=$(cat "$T/ctl.err")
    if [ "$rc" -ne "$want" ]; then
        fail "$desc: simcachectl $* exited $rc, want $want (out: $OUT; err: $ERR)"
        return 1
    fi
    ok
}

contains() { case "$1" in *"$2"*) return 0 ;; *) return 1 ;; esac; }
expect_in() { # DESC HAYSTACK NEEDLE
    if contains "$2" "$3"; then ok; else fail "$1: '$3' not in: $2"; fi
}
expect_eq() { # DESC GOT WANT
    if [ "$2" = "$3" ]; then ok; else fail "$1: got '$2', want '$3'"; fi
}

# json_ok DESC TEXT [PYTHON-ASSERTION over d]: queued, checked at the end by
# one python3 run (json.loads, then the assertion)
json_ok() {
    printf '%s\t%s\t%s\n' "$1" "${3:-True}" "$2" >>"$T/json.checks"
}
json_check_all() {
    [ -s "$T/json.checks" ] || return 0
    if [ -z "$PY" ]; then echo "note: no python3, JSON not validated" >&2; return 0; fi
    local out
    out=$("$PY" - "$T/json.checks" <<'EOF'
import json, sys
bad = n = 0
for line in open(sys.argv[1], encoding="utf-8"):
    desc, expr, text = line.rstrip("\n").split("\t", 2)
    n += 1
    try:
        d = json.loads(text)
        assert eval(expr, {"d": d}), "assertion false"
    except Exception as e:
        bad += 1
        print(f"FAIL: {desc}: {e!r} on {expr} for {text}")
print(f"{n} {bad}")
EOF
)
    printf '%s\n' "$out" | grep '^FAIL' >&2
    local last n bad
    last=$(printf '%s\n' "$out" | tail -1)
    n=${last% *}; bad=${last#* }
    CHECKS=$((CHECKS + n)); FAILS=$((FAILS + bad))
}

# start NAME [FLAGS...]: daemon on $T/NAME, sets DPID, SOCK, ADM, DIR
start() {
    local name=$1; shift
    DIR=$T/$name
    mkdir -p "$DIR"
    SOCK=$DIR/client.sock
    ADM=$DIR/admin.sock
    "$SIMCACHED" --socket "$SOCK" --admin-socket "$ADM" --data-dir "$DIR/data" "$@" \
        >>"$DIR/log" 2>&1 &
    DPID=$!
    PIDS+=("$DPID")
    for _ in $(seq 3000); do
        "$CTL" -s "$ADM" ping >/dev/null 2>&1 && return 0
        kill -0 "$DPID" 2>/dev/null || break
        sleep 0.01
    done
    fail "daemon $name did not start"; cat "$DIR/log" >&2
    return 1
}

# wait_exit PID: the exit status, or 124 after 30 s
wait_exit() {
    for _ in $(seq 3000); do
        if ! kill -0 "$1" 2>/dev/null; then
            wait "$1"; return $?
        fi
        sleep 0.01
    done
    return 124
}

# hold_start SOCK ID [MODEL]: an it_client holding a lease, fed through
# FIFOs; HLINE gets its first line ("ready LEASE"), HPID its pid.
HN=0
hold_start() {
    HN=$((HN + 1))
    mkfifo "$T/hin$HN" "$T/hout$HN"
    "$ITC" hold "$@" <"$T/hin$HN" >"$T/hout$HN" 2>>"$T/hold.err" &
    HPID=$!
    PIDS+=("$HPID")
    exec {HW}>"$T/hin$HN" {HR}<"$T/hout$HN"
    HLINE=""
    read -r -t 30 HLINE <&"$HR"
}
# hold_end: close its stdin; HLINE gets its last word, HRC its exit status
hold_end() {
    exec {HW}>&-
    HLINE=""
    read -r -t 30 HLINE <&"$HR"
    wait_exit "$HPID"; HRC=$?
    exec {HR}<&-
}

# no_clients ADMIN: wait until the daemon has seen every client go
no_clients() {
    for _ in $(seq 3000); do
        "$CTL" -s "$1" stats 2>/dev/null | grep -qx "clients 0" && return 0
        sleep 0.01
    done
    return 1
}

# ---------------------------------------------------------------- basics
start main --host-capacity 16m || exit 1
MAIN_PID=$DPID; MSOCK=$SOCK; MADM=$ADM
C="-s $MADM"

check "client socket mode 0600" test "$(stat -c %a "$MSOCK")" = 600
check "admin socket mode 0600" test "$(stat -c %a "$MADM")" = 600
check "client socket is a socket" test -S "$MSOCK"

ctl 0 "help" $C help && expect_in "help" "$OUT" "command=shutdown"
ctl 0 "ping" $C ping && expect_eq "ping" "$OUT" "PONG"
ctl 0 "stats" $C stats && expect_in "stats" "$OUT" "entries 0"
ctl 0 "info" $C info && expect_in "info pid" "$OUT" "pid $MAIN_PID"
SIMCACHE_ADMIN_SOCKET=$MADM ctl 0 "socket from \$SIMCACHE_ADMIN_SOCKET" ping

# ---------------------------------------------------------------- config
ctl 0 "config get all" $C config get all && expect_in "config get all" "$OUT" "key=max_entries value=0 runtime=1"
ctl 0 "config get" $C config get max_entries && expect_eq "config get" "$OUT" "max_entries 0"
ctl 0 "config set runtime key" $C config set max_entries 50 && expect_eq "config set" "$OUT" "OK max_entries = 50"
ctl 0 "config get after set" $C config get max_entries && expect_eq "config get after set" "$OUT" "max_entries 50"
ctl 1 "config set static key" $C config set socket "$T/x.sock" && expect_in "static key" "$ERR" "CLIENT_ERROR"
ctl 1 "config set bad value" $C config set max_entries lots && expect_in "bad value" "$ERR" "CLIENT_ERROR"
ctl 1 "config get unknown" $C config get nope && expect_in "unknown key" "$ERR" "CLIENT_ERROR unknown key"
ctl 0 "config value kept" $C config get max_entries && expect_eq "value kept" "$OUT" "max_entries 50"
ctl 0 "config set back" $C config set max_entries 0

# ---------------------------------------------------------------- entries
"$PUTFIND" -s "$MSOCK" --role writer -n 3 >"$T/pf.out" 2>&1
check "put_and_find writer" test $? -eq 0
"$ITC" put "$MSOCK" 2 'we"ird\name'$'\t''x' 't\enant' >"$T/ids" 2>&1
check "it_client put (odd names)" test $? -eq 0
ctl 0 "list" $C list && check "list shows 5" test "$(printf '%s\n' "$OUT" | grep -c '^id=')" -eq 5
ctl 0 "show" $C show 1
expect_in "show size" "$OUT" "size 131072"
expect_in "show meta" "$OUT" "meta_hex 7461736b2d30"
ctl 1 "show missing" $C show 12345 && expect_in "show missing" "$ERR" "NOT_FOUND"
ctl 1 "show bad id" $C show abc && expect_in "show bad id" "$ERR" "CLIENT_ERROR"
ctl 0 "namespaces" $C namespaces && expect_in "namespaces" "$OUT" "model=example-llama-7b"
check "namespaces: two" test "$(printf '%s\n' "$OUT" | grep -c '^id=')" -eq 2

# a client holding a lease shows up in `clients`
check "clients gone" no_clients "$MADM"
ctl 0 "clients (none)" $C clients && expect_eq "clients (none)" "$OUT" ""
ODD_MODEL='we"ird\name'$'\t''x'
hold_start "$MSOCK" "$(head -1 "$T/ids")" "$ODD_MODEL" 't\enant'
expect_in "holder ready" "$HLINE" "ready"
ctl 0 "clients (one)" $C clients && expect_in "clients pid" "$OUT" "pid=$HPID " && expect_in "clients lease" "$OUT" "leases=1 "
ctl 0 "stats leases" $C stats && expect_in "stats leases" "$OUT" "leases_active 1"
hold_end
expect_eq "holder released" "$HLINE" "released"
expect_eq "holder bytes intact" "$HRC" 0
check "clients gone again" no_clients "$MADM"

# --json: every command gives one valid JSON document
ctl 0 "json stats" --json $C stats && json_ok "json stats" "$OUT" 'd["entries"] == 5 and d["leases_active"] == 0'
ctl 0 "json info" --json $C info && json_ok "json info" "$OUT" "d['pid'] == $MAIN_PID and d['socket'] == '$MSOCK'"
ctl 0 "json help" --json $C help && json_ok "json help" "$OUT" 'any(c["command"] == "shutdown" for c in d)'
ctl 0 "json config all" --json $C config get all && json_ok "json config" "$OUT" 'any(k["key"] == "max_entries" for k in d)'
ctl 0 "json config key" --json $C config get max_entries && json_ok "json config key" "$OUT" 'd["max_entries"] == "0"'
ctl 0 "json list" --json $C list && json_ok "json list" "$OUT" 'len(d) == 5'
ctl 0 "json show" --json $C show 1 && json_ok "json show" "$OUT" 'd["id"] == 1 and d["meta_len"] == 6'
ctl 0 "json namespaces" --json $C namespaces && json_ok "json namespaces" "$OUT" \
    'sorted(n["model"] for n in d) == ["example-llama-7b", "we\"ird\\name\tx"] and any(n["tenant"] == "t\\enant" for n in d)'
ctl 0 "json clients" --json $C clients && json_ok "json clients" "$OUT" 'd == []'
ctl 1 "json unknown command" --json $C frobnicate && json_ok "json error" "$OUT" 'd["error"] == "ERROR"'
ctl 1 "json show missing" --json $C show 999 && json_ok "json not found" "$OUT" 'd["error"] == "NOT_FOUND"'
ctl 1 "json client error" --json $C config set socket x && json_ok "json client error" "$OUT" 'd["error"] == "CLIENT_ERROR"'
ctl 0 "json ping" --json $C ping && json_ok "json ping" "$OUT"
ctl 0 "json evict 0" --json $C evict 0 && json_ok "json evict" "$OUT" 'd["ok"] is True'

# flush and evict
ctl 0 "flush NS" $C flush 1 && expect_eq "flush NS" "$OUT" "OK flushed 3"
ctl 1 "flush unknown NS" $C flush no-such && expect_in "flush unknown" "$ERR" "CLIENT_ERROR"
ctl 0 "evict" $C evict 1 && expect_eq "evict 1" "$OUT" "OK evicted 1"
ctl 0 "flush all" $C flush && expect_eq "flush all" "$OUT" "OK flushed 1"
ctl 0 "stats after flush" $C stats && expect_in "stats after flush" "$OUT" "entries 0"

# unknown command, over-long line, exit codes
ctl 1 "unknown command" $C frobnicate && expect_in "unknown command" "$ERR" "ERROR unknown command 'frobnicate'"
LONG=$(head -c 4150 /dev/zero | tr '\0' 'x')
ctl 1 "line over 4096 bytes" $C "$LONG" && expect_in "long line" "$ERR" "CLIENT_ERROR line longer than 4096 bytes"
LONGER=$(head -c 5000 /dev/zero | tr '\0' 'x')
ctl 2 "command too long for simcachectl" $C "$LONGER"
ctl 2 "no command" $C
ctl 2 "bad option" --frob $C stats
ctl 0 "help option" -h
ctl 2 "no daemon there" -s "$T/nothing.sock" stats && expect_in "no daemon" "$ERR" "cannot connect"
expect_in "no daemon: the hint names the cause" "$ERR" "no simcached is running at $T/nothing.sock"

# getopt_long: --version, unknown options named, --json after the command
VER=$("$SIMCACHED" -V | sed -n 's/^simcached \([^ ]*\).*/\1/p')
ctl 0 "--version" --version && expect_eq "--version" "$OUT" "simcachectl $VER"
ctl 0 "-V" -V && expect_eq "-V" "$OUT" "simcachectl $VER"
ctl 2 "unknown long option" --frob $C stats && expect_in "unknown option named" "$ERR" "unknown option '--frob'"
ctl 2 "unknown long option with value" --frob=1 $C stats && expect_in "unknown option=value named" "$ERR" "unknown option '--frob'"
ctl 2 "unknown short option" -x $C stats && expect_in "unknown short option named" "$ERR" "unknown option '-x'"
ctl 2 "-s without a path" -s && expect_in "missing argument named" "$ERR" "option '-s' needs an argument"
ctl 0 "json after the command" $C stats --json && json_ok "json after the command" "$OUT" 'd["entries"] == 0'
ctl 0 "json between the words" $C config --json get max_entries && json_ok "json between words" "$OUT" 'd["max_entries"] == "0"'
ctl 0 "json before -s" --json $C ping && json_ok "json before -s" "$OUT"
ctl 1 "a word that looks like an option goes to the daemon" $C show -5 && expect_in "show -5" "$ERR" "CLIENT_ERROR"

# wait: ready at once, a timeout, and a daemon that starts later
ctl 0 "wait (daemon ready)" $C wait && expect_eq "wait prints nothing" "$OUT" ""
ctl 0 "wait --timeout (daemon ready)" $C wait --timeout 5
W0=$(date +%s%N)
ctl 1 "wait times out" -s "$T/nothing.sock" wait --timeout 0.3 &&
    expect_in "wait timeout message" "$ERR" "not ready at $T/nothing.sock after 0.3 s"
W1=$(date +%s%N)
check "wait waited about its timeout ($(( (W1 - W0) / 1000000 )) ms)" \
    test $(( (W1 - W0) / 1000000 )) -ge 250 -a $(( (W1 - W0) / 1000000 )) -lt 5000
ctl 2 "wait with a bad timeout" $C wait --timeout soon && expect_in "bad timeout" "$ERR" "--timeout"
ctl 2 "wait with an unknown option" $C wait --frob && expect_in "wait unknown option" "$ERR" "unknown option '--frob'"
mkdir -p "$T/late"
( sleep 0.5; exec "$SIMCACHED" --socket "$T/late/c.sock" --admin-socket "$T/late/a.sock" \
      --data-dir "$T/late/data" >>"$T/late/log" 2>&1 ) &
LATE=$!; PIDS+=("$LATE")
ctl 0 "wait for a daemon that starts later" -s "$T/late/a.sock" wait --timeout 20
ctl 0 "it answers once wait returned" -s "$T/late/a.sock" ping
kill -TERM "$LATE"; wait_exit "$LATE"; expect_eq "late daemon exits 0" "$?" 0

# hints that name the cause: a permission error, a refused uid (as root only)
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
    chmod 0711 "$T"
    cp "$CTL" "$T/ctl-nobody" && chmod 0755 "$T/ctl-nobody"
    R=$(as_nobody "$T/ctl-nobody" -s "$MADM" stats 2>&1); RC=$?
    expect_eq "EACCES exits 2" "$RC" 2
    expect_in "EACCES names socket_mode" "$R" "socket_mode"
    mkdir -p "$T/open" && chmod 0755 "$T/open"
    start open --socket-mode 0666 || exit 1
    OPID=$DPID
    R=$(as_nobody "$T/ctl-nobody" -s "$ADM" stats 2>&1); RC=$?
    expect_eq "refused uid exits 1" "$RC" 1
    expect_in "refused uid: the daemon's line" "$R" "SERVER_ERROR uid not allowed"
    expect_in "refused uid: the hint names admin_uids" "$R" "admin_uids"
    R=$(as_nobody "$T/ctl-nobody" -s "$ADM" wait --timeout 5 2>&1); RC=$?
    expect_eq "wait as a refused uid exits 1 at once" "$RC" 1
    expect_in "wait as a refused uid says why" "$R" "SERVER_ERROR uid not allowed"
    kill -TERM "$OPID"; wait_exit "$OPID"
    chmod 0700 "$T"
fi

# a raw admin session: long line then more commands; json session
if [ -n "$PY" ]; then
    "$PY" - "$MADM" <<'EOF' 2>"$T/raw.err"
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(sys.argv[1])
f = s.makefile("rwb", buffering=0)
def line():
    return f.readline().decode().rstrip("\n")
s.sendall(b"x" * 5000 + b"\nping\n")
assert line() == "CLIENT_ERROR line longer than 4096 bytes"
assert line() == "PONG"
s.sendall(b"format json\n")
assert json.loads(line())["ok"] is True
for c in ["stats", "info", "help", "config get all", "config get max_entries", "namespaces",
          "clients", "list", "list 1", "show 1", "show 99", "flush no-such", "evict 0", "nope",
          "x" * 5000, "ping"]:
    s.sendall(c.encode() + b"\n")
    json.loads(line())
print("raw ok")
EOF
    check "raw admin session (python): $(tail -1 "$T/raw.err")" test $? -eq 0
fi

# ---------------------------------------------------------------- shutdown
ID=$("$ITC" put "$MSOCK" 1 | head -1)
hold_start "$MSOCK" "$ID"
expect_in "holder 2 ready" "$HLINE" "ready"
ctl 0 "shutdown" $C shutdown && expect_eq "shutdown reply" "$OUT" "OK shutting down"
wait_exit "$MAIN_PID"; RC=$?
expect_eq "daemon exit status after shutdown" "$RC" 0
check "client socket removed after shutdown" test ! -e "$MSOCK"
check "admin socket removed after shutdown" test ! -e "$MADM"
ctl 2 "simcachectl after shutdown" $C ping
hold_end
expect_eq "holder 2 sees the daemon gone" "$HLINE" "closed"
expect_eq "holder 2 bytes intact after daemon exit" "$HRC" 0

# a client holding a lease while the daemon shuts down (SIGTERM)
start term || exit 1
ID=$("$ITC" put "$SOCK" 1 | head -1)
hold_start "$SOCK" "$ID"
expect_in "holder 3 ready" "$HLINE" "ready"
kill -TERM "$DPID"
wait_exit "$DPID"; RC=$?
expect_eq "daemon exit status after SIGTERM" "$RC" 0
check "client socket removed after SIGTERM" test ! -e "$SOCK"
check "admin socket removed after SIGTERM" test ! -e "$ADM"
hold_end
expect_eq "holder 3 sees the daemon gone, bytes still mapped" "$HLINE" "closed"
expect_eq "holder 3 bytes intact after daemon exit" "$HRC" 0
check "log says drained" grep -q "drained" "$DIR/log"

# SIGINT drains too
start int || exit 1
kill -INT "$DPID"
wait_exit "$DPID"; expect_eq "daemon exit status after SIGINT" "$?" 0

# ---------------------------------------------------------------- SIGHUP
mkdir -p "$T/hup"
CONF=$T/hup/simcached.conf
printf '# test config\nmax_entries = 10\nlog_level = info\n' >"$CONF"
start hup --config "$CONF" || exit 1
HUP_PID=$DPID; HSOCK=$SOCK; HADM=$ADM
ctl 0 "config from file" -s "$HADM" config get max_entries && expect_eq "config from file" "$OUT" "max_entries 10"
ctl 0 "info config_file" -s "$HADM" info && expect_in "info config_file" "$OUT" "config_file $CONF"
printf 'max_entries = 20\ndefault_threshold = 0.9\nsocket = %s/elsewhere.sock\n' "$T" >"$CONF"
kill -HUP "$HUP_PID"
GOT=""
for _ in $(seq 3000); do
    GOT=$("$CTL" -s "$HADM" config get max_entries 2>/dev/null)
    [ "$GOT" = "max_entries 20" ] && break
    sleep 0.01
done
expect_eq "SIGHUP reloads max_entries" "$GOT" "max_entries 20"
check "log names the reloaded key" grep -q "SIGHUP: max_entries 10 -> 20" "$T/hup/log"
ctl 0 "SIGHUP reloads default_threshold" -s "$HADM" config get default_threshold && expect_eq "threshold" "$OUT" "default_threshold 0.9"
ctl 0 "SIGHUP keeps static socket" -s "$HADM" config get socket && expect_eq "socket kept" "$OUT" "socket $HSOCK"
check "socket still there after SIGHUP" test -S "$HSOCK"
check "no socket at the new path" test ! -e "$T/elsewhere.sock"
check "log names the restart-only key" grep -q "socket changed in the file but needs a restart" "$T/hup/log"
# a broken file: keep running with what is there
printf 'max_entries = 30\nthis is not a setting\n' >"$CONF"
kill -HUP "$HUP_PID"
for _ in $(seq 3000); do grep -q "keeping the running config" "$T/hup/log" && break; sleep 0.01; done
check "bad config on SIGHUP is logged" grep -q "keeping the running config" "$T/hup/log"
ctl 0 "bad config on SIGHUP keeps values" -s "$HADM" config get max_entries && expect_eq "kept" "$OUT" "max_entries 20"
check "daemon alive after bad SIGHUP" kill -0 "$HUP_PID"
"$ITC" ping "$HSOCK"; check "clients served after SIGHUP" test $? -eq 0

# ------------------------------------------- a second daemon, stale sockets
"$SIMCACHED" --socket "$HSOCK" --admin-socket "$T/hup/admin2.sock" --data-dir "$T/hup/data2" \
    >"$T/second.log" 2>&1 &
P2=$!; PIDS+=("$P2")
wait_exit "$P2"; RC=$?
check "second daemon on a live client socket exits nonzero (got $RC)" test "$RC" -ne 0 -a "$RC" -ne 124
check "second daemon says why" grep -q "another simcached is listening" "$T/second.log"
check "first daemon's socket still there" test -S "$HSOCK"
"$ITC" ping "$HSOCK"; check "first daemon still serves clients" test $? -eq 0
check "second daemon left no admin socket" test ! -e "$T/hup/admin2.sock"

"$SIMCACHED" --socket "$T/hup/client2.sock" --admin-socket "$HADM" --data-dir "$T/hup/data2" \
    >"$T/second2.log" 2>&1 &
P3=$!; PIDS+=("$P3")
wait_exit "$P3"; RC=$?
check "second daemon on a live admin socket exits nonzero (got $RC)" test "$RC" -ne 0 -a "$RC" -ne 124
ctl 0 "first daemon's admin socket still answers" -s "$HADM" ping
check "second daemon removed its own client socket" test ! -e "$T/hup/client2.sock"

# a crash leaves the socket files; the next daemon replaces them
kill -KILL "$HUP_PID"; wait "$HUP_PID" 2>/dev/null
check "socket file left by SIGKILL" test -S "$HSOCK"
"$SIMCACHED" --socket "$HSOCK" --admin-socket "$HADM" --data-dir "$T/hup/data" >>"$T/hup/log2" 2>&1 &
P4=$!; PIDS+=("$P4")
for _ in $(seq 3000); do "$CTL" -s "$HADM" ping >/dev/null 2>&1 && break; sleep 0.01; done
"$ITC" ping "$HSOCK"; check "daemon starts over a stale socket" test $? -eq 0
check "stale-replaced socket is 0600" test "$(stat -c %a "$HSOCK")" = 600
kill -TERM "$P4"; wait_exit "$P4"; expect_eq "restarted daemon exits 0" "$?" 0

# flags override the config file at start; a SIGHUP re-reads the file over
# the running values, flags included (docs/configuration.md)
printf 'max_entries = 10\nlog_level = info\n' >"$CONF"
start prec --config "$CONF" --max-entries 5 || exit 1
ctl 0 "flag over file" -s "$ADM" config get max_entries && expect_eq "flag over file" "$OUT" "max_entries 5"
printf 'max_entries = 10\nlog_level = debug\n' >"$CONF"
kill -HUP "$DPID"
for _ in $(seq 3000); do
    [ "$("$CTL" -s "$ADM" config get log_level 2>/dev/null)" = "log_level debug" ] && break
    sleep 0.01
done
ctl 0 "SIGHUP applied the file" -s "$ADM" config get log_level && expect_eq "log_level reloaded" "$OUT" "log_level debug"
ctl 0 "file wins after SIGHUP" -s "$ADM" config get max_entries && expect_eq "file over flag after SIGHUP" "$OUT" "max_entries 10"
kill -TERM "$DPID"; wait_exit "$DPID"; expect_eq "exit 0" "$?" 0

# bad command lines are refused with status 2
"$SIMCACHED" --no-such-key 1 >/dev/null 2>&1; expect_eq "unknown flag exits 2" "$?" 2
"$SIMCACHED" --max-clients 0 >/dev/null 2>&1; expect_eq "bad flag value exits 2" "$?" 2
"$SIMCACHED" --config "$T/no-such.conf" >/dev/null 2>&1; expect_eq "missing config file exits 2" "$?" 2

json_check_all
echo "test_admin.sh: $CHECKS checks, $FAILS failed"
[ "$FAILS" -eq 0 ]
