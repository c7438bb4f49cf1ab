#!/usr/bin/env bash
# Cache-hit throughput of the edge against nginx proxy_cache and Varnish, all
# three in front of the same demo origin on loopback, measured with wrk in
# one run with the same settings. Prints a table with the ratio of the edge
# to the better of the two others for 1 KiB, 64 KiB and 1 MiB objects.
#
# Usage: edge/bench/run.sh            (from anywhere in the repository)
# Environment (defaults in brackets):
#   DURATION   seconds per wrk run [5]
#   THREADS    wrk threads [2]
#   CONNS      wrk connections [64]
#   ROUNDS     rounds per server and size; the median is reported [5]
#   SIZES      object sizes in bytes ["1024 65536 1048576"]
#   BASE_PORT  first of five loopback ports used [28080]
#   EDGE_GOMAXPROCS  GOMAXPROCS of the edge process [Go's default: the CPUs]
#   NGINX_WORKERS    nginx worker_processes [auto: the CPUs]
#   KEEP       1 keeps the temporary directory (configs, logs)
# Needs: go, wrk, nginx (Debian nginx-light), varnishd, curl.
set -euo pipefail

DURATION=${DURATION:-5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-5}
SIZES=${SIZES:-"1024 65536 1048576"}
BASE_PORT=${BASE_PORT:-28080}

EDGE_PORT=$BASE_PORT
EDGE_ADMIN_PORT=$((BASE_PORT + 1))
ORIGIN_PORT=$((BASE_PORT + 2))
NGINX_PORT=$((BASE_PORT + 3))
VARNISH_PORT=$((BASE_PORT + 4))
HOST=127.0.0.1

for tool in go wrk nginx varnishd curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: $tool is required" >&2; exit 1; }
done

cd "$(dirname "$0")/../.."
TMP=$(mktemp -d /tmp/edgebench.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -f "$TMP/nginx.pid" ]; then kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true; fi
  if [ -f "$TMP/varnish.pid" ]; then kill "$(cat "$TMP/varnish.pid")" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

wait_http() { # url [log file]
  for _ in $(seq 1 200); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "run.sh: $1 did not come up" >&2
  if [ -n "${2:-}" ]; then tail -5 "$2" >&2; fi
  exit 1
}

echo "building edge and demo origin..." >&2
go build -o "$TMP/edge" ./edge/cmd/edge
go build -o "$TMP/origin" ./origin/cmd/origin

"$TMP/origin" --listen "$HOST:$ORIGIN_PORT" --log-level warn >"$TMP/origin.log" 2>&1 &
PIDS+=($!)
wait_http "http://$HOST:$ORIGIN_PORT/healthz" "$TMP/origin.log"

# --- edge ---
cat >"$TMP/edge.yaml" <<EOF
listen: "$HOST:$EDGE_PORT"
admin_listen: "$HOST:$EDGE_ADMIN_PORT"
limits:
  max_connections: 10000
cache:
  memory_bytes: 1GiB
  disk_path: $TMP/edge-cache
  disk_bytes: 4GiB
sites:
  - name: bench
    origins:
      - url: http://$HOST:$ORIGIN_PORT
telemetry:
  log_level: warn
EOF
if [ -n "${EDGE_GOMAXPROCS:-}" ]; then export GOMAXPROCS=$EDGE_GOMAXPROCS; fi
"$TMP/edge" --config "$TMP/edge.yaml" >"$TMP/edge.log" 2>&1 &
EDGE_PID=$!
PIDS+=($EDGE_PID)
unset GOMAXPROCS
wait_http "http://$HOST:$EDGE_ADMIN_PORT/healthz" "$TMP/edge.log"

# --- nginx proxy_cache ---
mkdir -p "$TMP/nginx-cache" "$TMP/nginx-tmp"
cat >"$TMP/nginx.conf" <<EOF
worker_processes ${NGINX_WORKERS:-auto};
daemon on;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
user root;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush off;
  tcp_nodelay on;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/nginx-tmp/body;
  proxy_temp_path $TMP/nginx-tmp/proxy;
  fastcgi_temp_path $TMP/nginx-tmp/fastcgi;
  uwsgi_temp_path $TMP/nginx-tmp/uwsgi;
  scgi_temp_path $TMP/nginx-tmp/scgi;
  proxy_cache_path $TMP/nginx-cache levels=1:2 keys_zone=bench:64m max_size=4g inactive=1h use_temp_path=off;
  upstream origin { server $HOST:$ORIGIN_PORT; keepalive 32; }
  server {
    listen $HOST:$NGINX_PORT;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache bench;
      proxy_cache_lock on;
      add_header X-Cache \$upstream_cache_status;
    }
  }
}
EOF
nginx -c "$TMP/nginx.conf" -p "$TMP" -e "$TMP/nginx-error.log" ||
  { echo "run.sh: nginx did not start" >&2; tail -5 "$TMP/nginx-error.log" >&2; exit 1; }
wait_http "http://$HOST:$NGINX_PORT/healthz" "$TMP/nginx-error.log"

# --- Varnish ---
varnishd -a "$HOST:$VARNISH_PORT" -b "$HOST:$ORIGIN_PORT" -s malloc,1G -n "$TMP/varnish" \
  -P "$TMP/varnish.pid" -T "$HOST:0" -p thread_pool_min=50 >"$TMP/varnish.log" 2>&1 ||
  { echo "run.sh: varnishd did not start" >&2; tail -5 "$TMP/varnish.log" >&2; exit 1; }
wait_http "http://$HOST:$VARNISH_PORT/healthz" "$TMP/varnish.log"

# --- warm the caches and check that the second request is a hit ---
hit_header() { # server url
  curl -fsS -o /dev/null -D - "$2" | tr -d '\r' | awk -v s="$1" '
    tolower($1) == "cache-status:" && s == "edge" { print; exit }
    tolower($1) == "x-cache:" && s == "nginx" { print; exit }
    tolower($1) == "age:" && s == "varnish" { print; exit }'
}
for size in $SIZES; do
  for server in edge nginx varnish; do
    case $server in
      edge) port=$EDGE_PORT ;; nginx) port=$NGINX_PORT ;; varnish) port=$VARNISH_PORT ;;
    esac
    url="http://$HOST:$port/bytes/$size"
    curl -fsS -o /dev/null "$url"
    sleep 1.1 # Varnish's Age counts whole seconds
    h=$(hit_header "$server" "$url")
    case "$server:$h" in
      edge:*hit*|nginx:*HIT*|varnish:Age:\ [1-9]*) ;;
      *) echo "run.sh: $server did not serve $url from its cache (got '$h')" >&2; exit 1 ;;
    esac
    # Identical bytes from all three.
    curl -fsS "$url" | cmp -s - <(curl -fsS "http://$HOST:$ORIGIN_PORT/bytes/$size") ||
      { echo "run.sh: $server serves different bytes for $url" >&2; exit 1; }
  done
done

# --- measure ---
# Besides requests/s, each run records the CPU time the server's processes
# used (utime + stime from /proc, all threads and worker processes): on a
# shared machine, requests per CPU-second shows efficiency independently of
# how much CPU the scheduler happened to give each server.
CLK_TCK=$(getconf CLK_TCK)
server_pids() { # server -> pids
  case $1 in
    edge) echo "$EDGE_PID" ;;
    nginx) m=$(cat "$TMP/nginx.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')" ;;
    varnish) m=$(cat "$TMP/varnish.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')" ;;
  esac
}
cpu_ticks() { # pids... -> utime+stime ticks
  local t=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    t=$((t + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat")))
  done
  echo "$t"
}
run_wrk() { # server url -> "requests/s MB/s requests-per-CPU-second"
  local out pids before after
  pids=$(server_pids "$1")
  # shellcheck disable=SC2086
  before=$(cpu_ticks $pids)
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "$2")
  # shellcheck disable=SC2086
  after=$(cpu_ticks $pids)
  if echo "$out" | grep -q "Non-2xx"; then
    echo "run.sh: non-2xx answers from $2:" >&2; echo "$out" >&2; exit 1
  fi
  if echo "$out" | grep -q "Socket errors"; then
    echo "$1: $(echo "$out" | grep "Socket errors")" >&2
  fi
  local rps tr total
  rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
  total=$(echo "$out" | awk '/requests in/ {print $1}')
  tr=$(echo "$out" | awk '/^Transfer\/sec:/ {v=$2; u=substr(v, length(v)-1); n=substr(v, 1, length(v)-2);
        if (u == "GB") n *= 1024; else if (u == "KB") n /= 1024; printf "%.1f", n}')
  local cps
  cps=$(awk -v n="$total" -v t=$((after - before)) -v hz="$CLK_TCK" 'BEGIN {printf "%.0f", (t > 0) ? n / (t / hz) : 0}')
  echo "$rps $tr $cps"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Rounds interleave the servers, in a rotating order, so that a shared
# machine's load swings hit all three alike.
declare -A RPS MBS CPS
for size in $SIZES; do
  for round in $(seq 1 "$ROUNDS"); do
    case $((round % 3)) in
      1) order="edge nginx varnish" ;; 2) order="nginx varnish edge" ;; 0) order="varnish edge nginx" ;;
    esac
    for server in $order; do
      case $server in
        edge) port=$EDGE_PORT ;; nginx) port=$NGINX_PORT ;; varnish) port=$VARNISH_PORT ;;
      esac
      read -r rps mbs cps < <(run_wrk "$server" "http://$HOST:$port/bytes/$size")
      echo "size $size round $round $server: $rps req/s, $mbs MB/s, $cps req per CPU-second" >&2
      RPS[$server,$size]+="$rps "
      MBS[$server,$size]+="$mbs "
      CPS[$server,$size]+="$cps "
    done
  done
done

goal() { case $1 in 1024) echo 1.5 ;; 65536) echo 1.1 ;; 1048576) echo 1.0 ;; *) echo 1.0 ;; esac; }
med() { echo "$1" | tr ' ' '\n' | grep -v '^$' | median; }
echo
echo "wrk -t$THREADS -c$CONNS -d${DURATION}s, median of $ROUNDS rounds, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)," \
  "edge GOMAXPROCS=${EDGE_GOMAXPROCS:-default}, nginx workers ${NGINX_WORKERS:-auto}, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "requests/s (ratio: edge / the better of nginx and Varnish):"
printf "%-8s %11s %11s %11s %6s %5s %s\n" size edge nginx varnish ratio goal result
status=0
for size in $SIZES; do
  e=$(med "${RPS[edge,$size]}"); n=$(med "${RPS[nginx,$size]}"); v=$(med "${RPS[varnish,$size]}")
  best=$(awk -v a="$n" -v b="$v" 'BEGIN {print (a > b) ? a : b}')
  ratio=$(awk -v e="$e" -v b="$best" 'BEGIN {printf "%.2f", e / b}')
  g=$(goal "$size")
  ok=$(awk -v r="$ratio" -v g="$g" 'BEGIN {print (r >= g) ? "ok" : "BELOW"}')
  [ "$ok" = ok ] || status=1
  printf "%-8s %11.0f %11.0f %11.0f %6s %5s %s\n" "$size" "$e" "$n" "$v" "$ratio" "$g" "$ok"
done
echo "requests per CPU-second of the server's processes (ratio as above):"
printf "%-8s %11s %11s %11s %6s\n" size edge nginx varnish ratio
for size in $SIZES; do
  e=$(med "${CPS[edge,$size]}"); n=$(med "${CPS[nginx,$size]}"); v=$(med "${CPS[varnish,$size]}")
  best=$(awk -v a="$n" -v b="$v" 'BEGIN {print (a > b) ? a : b}')
  printf "%-8s %11.0f %11.0f %11.0f %6s\n" "$size" "$e" "$n" "$v" "$(awk -v e="$e" -v b="$best" 'BEGIN {printf "%.2f", (b > 0) ? e / b : 0}')"
done
echo "MB/s (median):"
for size in $SIZES; do
  printf "%-8s edge %s nginx %s varnish %s\n" "$size" "$(med "${MBS[edge,$size]}")" "$(med "${MBS[nginx,$size]}")" "$(med "${MBS[varnish,$size]}")"
done
exit $status
