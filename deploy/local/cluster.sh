#!/usr/bin/env bash
# Runs a Snakepit cluster on loopback: Redis (or the one at $REDIS_URL),
# two room workers and two gateways. Ctrl-C stops everything.
#
#   deploy/local/cluster.sh                # build (release) and run
#   deploy/local/cluster.sh --redis-cluster   # over a Redis Cluster: 3 masters,
#                                             # 3 replicas, sharded pub/sub
#   REDIS_URL=redis://127.0.0.1:6379/ deploy/local/cluster.sh
#   GATEWAY_PORTS="8081 8082" WORKER_PORTS="9091 9092" deploy/local/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

SHARDED=""
for arg in "$@"; do
  case "$arg" in
    --redis-cluster) SHARDED=1 ;;
    *) echo "unknown option: $arg (only --redis-cluster)" >&2; exit 2 ;;
  esac
done

GATEWAY_PORTS=${GATEWAY_PORTS:-"8081 8082"}
WORKER_PORTS=${WORKER_PORTS:-"9091 9092"}
REDIS_PORT=${REDIS_PORT:-6390}
PREFIX=${SNAKEPIT_REDIS_PREFIX:-snakepit-local}
LOGS=${LOGS:-target/cluster-logs}
mkdir -p "$LOGS"

cargo build --release -p snakepit-gateway -p snakepit-room-worker
BIN=target/release

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo "stopping..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

REDIS_FLAGS=()
if [ -n "$SHARDED" ] && [ -z "${REDIS_URL:-}" ]; then
  # Six nodes on REDIS_PORT..REDIS_PORT+5 (their cluster bus on +10000),
  # made one cluster of three masters with a replica each.
  CLUSTER_DIR="$LOGS/redis-cluster"
  rm -rf "$CLUSTER_DIR" && mkdir -p "$CLUSTER_DIR"
  nodes=()
  for n in 0 1 2 3 4 5; do
    port=$((REDIS_PORT + n))
    (cd "$CLUSTER_DIR" && exec redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 2000 \
      --dbfilename "dump-$port.rdb" --cluster-require-full-coverage no \
      >"redis-$port.log" 2>&1) &
    pids+=($!)
    nodes+=("127.0.0.1:$port")
  done
  for n in 0 1 2 3 4 5; do
    for _ in $(seq 50); do redis-cli -p $((REDIS_PORT + n)) ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$LOGS/redis-cluster-create.log"
  for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" cluster info | grep -q "cluster_state:ok" && break
    sleep 0.1
  done
  REDIS_URL=$(printf 'redis://%s/,' "${nodes[@]}")
  REDIS_URL=${REDIS_URL%,}
fi
if [ -n "$SHARDED" ]; then REDIS_FLAGS=(--redis-cluster); fi

if [ -z "${REDIS_URL:-}" ]; then
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$LOGS/redis.log" 2>&1 &
  pids+=($!)
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

i=0
for port in $WORKER_PORTS; do
  i=$((i + 1))
  SNAKEPIT_REDIS_PREFIX=$PREFIX "$BIN/room-worker" --redis-url "$REDIS_URL" "${REDIS_FLAGS[@]}" --listen "127.0.0.1:$port" \
    --worker-id "local-worker-$i" >"$LOGS/worker-$i.log" 2>&1 &
  pids+=($!)
done
for port in $GATEWAY_PORTS; do
  SNAKEPIT_REDIS_PREFIX=$PREFIX "$BIN/gateway" --redis-url "$REDIS_URL" "${REDIS_FLAGS[@]}" --listen "127.0.0.1:$port" \
    >"$LOGS/gateway-$port.log" 2>&1 &
  pids+=($!)
done

sleep 1
echo "Snakepit cluster on loopback (Redis ${SHARDED:+Cluster }$REDIS_URL, prefix $PREFIX, logs in $LOGS):"
for port in $GATEWAY_PORTS; do echo "  play:    http://127.0.0.1:$port/   (metrics /metrics)"; done
for port in $WORKER_PORTS; do echo "  worker:  http://127.0.0.1:$port/metrics"; done
echo "Open two tabs on different gateways with ?room=lobby to play in one room. Ctrl-C stops."
wait -n "${pids[@]}" || true
