# bench/lib/cluster.sh: shell wrappers around bench/lib/cluster.py, to
# source from a benchmark script:
#
#   . "$(dirname "$0")/lib/cluster.sh"
#   cluster_start cairn /var/tmp/mybench build-release   # or: cluster_start etcd DIR
#   trap 'cluster_stop /var/tmp/mybench' EXIT
#   echo "$CLUSTER_HTTP_PORTS"        # one client port per member
#   port=$(cluster_leader_port /var/tmp/mybench)
#   cluster_kill9 DIR INDEX; cluster_restart DIR INDEX
#
# cluster_start sets CLUSTER_DIR, CLUSTER_KIND, CLUSTER_HTTP_PORTS (space
# separated) and CLUSTER_LEADER_PORT; it returns non-zero (after stopping
# what it started) when no leader is agreed within BENCH_START_TIMEOUT
# seconds (default 60).

CLUSTER_PY="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)/cluster.py"

# cluster_start KIND DIR [BUILD_DIR] [N]
cluster_start() {
	local out
	out=$(python3 "$CLUSTER_PY" start "$1" "$2" "${3:-build}" "${4:-3}") || return 1
	eval "$out"
}

cluster_stop() { python3 "$CLUSTER_PY" stop "$1"; }
cluster_leader_port() { python3 "$CLUSTER_PY" leader "$1"; }
cluster_kill9() { python3 "$CLUSTER_PY" kill9 "$1" "$2"; }
cluster_restart() { python3 "$CLUSTER_PY" restart "$1" "$2"; }
