#!/usr/bin/env bash
# Instructions per event, counted by valgrind's callgrind: for `eye serve` (worker
# included: every accepted event is stored before the count is taken) and for the HTTP
# ceiling, over the same requests (single events, or batches). Unlike the timed
# benchmark this does not depend on what else the machine is doing: the same binaries
# and load give the same counts, so a change of a few percent shows. Kernel work (TCP,
# fsync) is not counted.
#
#   cargo build --release -p eye -p eye-bench
#   crates/eye-bench/instructions.sh [REQUESTS_PER_CONNECTION] [CONNECTIONS] [EVENTS_PER_REQUEST]
#   crates/eye-bench/instructions.sh 25 8 100     # batches of 100
#
# Needs valgrind and python3. Takes a few minutes (the server runs ~50x slower).
set -euo pipefail

per_connection=${1:-1000}
connections=${2:-8}
batch=${3:-1}
bin=${EYE_BIN_DIR:-target/release}
work=$(mktemp -d /tmp/eye-instructions-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

port_of() { grep -o 'listening on http://[0-9.:]*' "$1" | head -1 | sed 's#.*http://##'; }

# Sends `$3` requests of `$5` events (one object when 1, else an array) on each of `$4`
# keep-alive connections.
load() {
    python3 - "$1" "$2" "$3" "$4" "$5" <<'EOF'
import http.client, json, sys, threading
address, token, n, k, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
host, port = address.rsplit(':', 1)
def event(i):
    return {"session_id": f"session-{i % 10000}", "category": "page interaction",
            "name": "pageview", "data": {"host": "www.example.com", "path": f"/page/{i}"},
            "timestamp": "2026-11-29T10:00:00.000Z"}
def send(c):
    conn = http.client.HTTPConnection(host, int(port))
    for i in range(n):
        first = (c * n + i) * batch
        body = event(first) if batch == 1 else [event(first + j) for j in range(batch)]
        conn.request('POST', '/events', json.dumps(body),
                     {'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'})
        response = conn.getresponse()
        response.read()
        assert response.status == 202, response.status
threads = [threading.Thread(target=send, args=(c,)) for c in range(k)]
[t.start() for t in threads]
[t.join() for t in threads]
EOF
}

# Starts `$@` under callgrind, waits for its address, warms it up, zeroes the counters,
# runs the load, lets `settle` finish, and dumps: prints the dump's file name.
measure() {
    local name=$1 token=$2 settle=$3
    shift 3
    valgrind --tool=callgrind --callgrind-out-file="$work/$name.out" "$@" >"$work/$name.log" 2>&1 &
    local pid=$!
    for _ in $(seq 120); do
        [ -n "$(port_of "$work/$name.log")" ] && break
        sleep 0.5
    done
    local address
    address=$(port_of "$work/$name.log")
    [ -n "$address" ] || { echo "$name did not start: $(tail -3 "$work/$name.log")" >&2; exit 1; }
    load "$address" "$token" 50 4 "$batch"
    $settle "$address" $((200 * batch)) >&2
    callgrind_control -z "$pid" >/dev/null 2>&1
    load "$address" "$token" "$per_connection" "$connections" "$batch"
    $settle "$address" $(((200 + per_connection * connections) * batch)) >&2
    callgrind_control -d "$pid" >/dev/null 2>&1
    for _ in $(seq 60); do
        [ -s "$work/$name.out.1" ] && break
        sleep 0.5
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    echo "$work/$name.out.1"
}

# Waits until the server has stored `$2` events (60 s deadline).
stored() {
    for _ in $(seq 240); do
        local n
        n=$(curl -s "http://$1/metrics" | awk '$1 == "eye_events_stored_total" {print $2}')
        [ "$n" = "$2" ] && return 0
        sleep 0.25
    done
    echo "only ${n:-0} of $2 events stored" >&2
    exit 1
}
nothing() { :; }

total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }
# Inclusive instructions of the first function whose line matches `$2`.
inclusive() {
    [ -s "$1.inclusive" ] || callgrind_annotate --inclusive=yes "$1" >"$1.inclusive" 2>/dev/null
    pattern="$2" awk '/^ *[0-9,]+ \(/ && $0 ~ ENVIRON["pattern"] {gsub(",", "", $1); print $1; exit}' "$1.inclusive"
}

data="$work/data"
token=$("$bin/eye" app create bench --data-dir "$data" 2>/dev/null | tail -1)
eye=$(measure eye "$token" stored "$bin/eye" serve --data-dir "$data" --listen 127.0.0.1:0)
ceiling=$(measure ceiling "$token" nothing "$bin/eye-bench" ceiling-server --listen 127.0.0.1:0)

requests=$((per_connection * connections))
events=$((requests * batch))
per() { echo $((${1:-0} / events)); }
all=$(total "$eye")
store=$(inclusive "$eye" 'eye_store::sqlite::write::write_batch \[')
# The writer thread's body is inlined into its closure in a release build, not in a
# debug one.
queue=$(inclusive "$eye" 'eye-queue/src/embedded.rs:std::sys::backtrace|eye_queue::embedded::write_until_closed \[')
worker=$(inclusive "$eye" 'eye_pipeline::worker::Worker::run_until_stopped::\{\{closure\}\} \[')
for part in store queue worker; do
    [ -n "${!part}" ] || { echo "no $part function found in $eye" >&2; exit 1; }
done
echo "instructions per event, $requests requests of $batch event(s) on $connections connections:"
echo "  ceiling (all)                                  $(per "$(total "$ceiling")")"
echo "  eye serve (all)                                $(per "$all")"
echo "    store writes (write_batch)                   $(per "$store")"
echo "    queue writer thread                          $(per "$queue")"
echo "    worker: fetch, decode, checks                $(per "$worker")"
echo "    the rest: HTTP, middleware, ingest handler   $(per $((all - store - queue - worker)))"
