#!/usr/bin/env bash
# What ENQUEUE_REPLICAS=1 costs: two API processes on one master with a loopback replica,
# one with ENQUEUE_REPLICAS=0 and one with 1, in alternating wrk rounds (16 connections, 8 s).
# Run from the project root: bench/enqueue_replicas.sh (needs redis-server, redis-cli, wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
d=$(mktemp -d)
fp() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
M=$(fp); R=$(fp); P0=$(fp); P1=$(fp)
redis-server --port $M --bind 127.0.0.1 --save "" --appendonly no --dir $d --daemonize yes --pidfile $d/m.pid --logfile $d/m.log
redis-server --port $R --bind 127.0.0.1 --save "" --appendonly no --dir $d --daemonize yes --pidfile $d/r.pid --logfile $d/r.log --replicaof 127.0.0.1 $M
for _ in $(seq 100); do redis-cli -p $R info replication | grep -q "master_link_status:up" && break; sleep 0.2; done
export REDIS_URL=redis://127.0.0.1:$M/0 LOG_LEVEL=WARNING
ENQUEUE_REPLICAS=0 .venv/bin/conveyor api --port $P0 > $d/a0.log 2>&1 & A0=$!
ENQUEUE_REPLICAS=1 .venv/bin/conveyor api --port $P1 > $d/a1.log 2>&1 & A1=$!
for p in $P0 $P1; do for _ in $(seq 100); do curl -fs http://127.0.0.1:$p/ready >/dev/null && break; sleep 0.1; done; done
cat > $d/body.lua <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"taskName":"echo","payload":{"userId":123,"template":"welcome"},"priority":1}'
LUA
run() { wrk -t2 -c16 -d8s -s $d/body.lua http://127.0.0.1:$1/api/tasks | awk '/Requests\/sec/{r=$2} /Non-2xx/{e=$NF} END{printf "%s%s", r, (e ? " (" e " non-2xx)" : "")}'; }
for p in $P0 $P1 $P1 $P0 $P0 $P1; do echo "replicas=$([ $p = $P0 ] && echo 0 || echo 1) $(run $p) req/s"; sleep 2; done
kill $A0 $A1; wait $A0 $A1 2>/dev/null || true
kill $(cat $d/m.pid) $(cat $d/r.pid)
