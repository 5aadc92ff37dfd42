#!/usr/bin/env bash
# Client-compatibility tier: starts a fresh single-server Cairn agent on free
# loopback ports, runs one third-party client's test suite against it, and
# always stops the agent.
#
# Usage: tests/compat/run.sh python|node
#
# Environment:
#   CAIRN_BUILD_ROOT  meson build directory holding cli/cairn (meson test
#                     passes it; default: <repo>/build)
#   COMPAT_START_TIMEOUT  seconds to wait for a leader (default 60)
#   COMPAT_KEEP       non-empty: keep the data dir and agent log for debugging
#
# Exit codes: the client test's own (0 = every check passed), 77 = skipped
# (client or its dependencies missing), 99 = harness failure (agent did not
# start, no free ports...).
set -u

client="${1:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${CAIRN_BUILD_ROOT:-${MESON_BUILD_ROOT:-$repo/build}}"
cairn="$build/cli/cairn"
start_timeout="${COMPAT_START_TIMEOUT:-60}"

case "$client" in
python)
	if ! /usr/bin/python3 -c 'import consul' 2>/dev/null; then
		echo "SKIP: Debian's python3-consul is not installed (apt-get install python3-consul)"
		exit 77
	fi
	;;
node)
	if ! command -v node >/dev/null 2>&1; then
		echo "SKIP: node is not installed"
		exit 77
	fi
	if [ ! -d "$here/node_modules/consul" ]; then
		echo "SKIP: $here/node_modules is missing (run 'npm ci' in tests/compat)"
		exit 77
	fi
	;;
*)
	echo "usage: $0 python|node" >&2
	exit 2
	;;
esac

if [ ! -x "$cairn" ]; then
	echo "FAIL: $cairn not found (set CAIRN_BUILD_ROOT to the meson build dir)" >&2
	exit 99
fi
if ! command -v curl >/dev/null 2>&1; then
	echo "SKIP: curl is not installed"
	exit 77
fi

tmp="$(mktemp -d /tmp/cairn-compat.XXXXXX)"
agent_pid=""

cleanup() {
	local rc=$?
	if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
		kill -TERM "$agent_pid" 2>/dev/null
		# Give the supervisor up to 10 s to stop its daemons, then force.
		for _ in $(seq 1 100); do
			kill -0 "$agent_pid" 2>/dev/null || break
			wait_a_bit
		done
		if kill -0 "$agent_pid" 2>/dev/null; then
			echo "agent $agent_pid did not stop on SIGTERM; killing it" >&2
			kill -KILL "$agent_pid" 2>/dev/null
		fi
		wait "$agent_pid" 2>/dev/null
	fi
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -f "$tmp/agent.log" ]; then
		echo "---- last 40 lines of the agent log ----" >&2
		tail -n 40 "$tmp/agent.log" >&2
	fi
	if [ -n "${COMPAT_KEEP:-}" ]; then
		echo "kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}

# The polling interval of the deadline loops below (never a fixed wait for
# readiness: every loop polls a condition and gives up at a deadline).
wait_a_bit() {
	sleep 0.1
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Five distinct ports that are free for both TCP and UDP on 127.0.0.1
# (DNS and gossip use both).
ports="$(/usr/bin/python3 - <<'EOF'
import socket
picked, held = [], []
while len(picked) < 5:
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        t.close()
        u.close()
        continue
    held += [t, u]
    picked.append(port)
print(" ".join(map(str, picked)))
EOF
)"
if [ -z "$ports" ]; then
	echo "FAIL: could not find free ports" >&2
	exit 99
fi
read -r http_port dns_port server_port lan_port wan_port <<<"$ports"

"$cairn" agent -server -bootstrap-expect 1 -data-dir "$tmp/data" -node compat \
	-http-port "$http_port" -dns-port "$dns_port" -server-port "$server_port" \
	-serf-lan-port "$lan_port" -serf-wan-port "$wan_port" \
	>"$tmp/agent.log" 2>&1 &
agent_pid=$!

base="http://127.0.0.1:$http_port"
deadline=$((SECONDS + start_timeout))
leader=""
while :; do
	if ! kill -0 "$agent_pid" 2>/dev/null; then
		echo "FAIL: cairn agent exited before electing a leader" >&2
		exit 99
	fi
	leader="$(curl -sf --max-time 2 "$base/v1/status/leader" 2>/dev/null || true)"
	case "$leader" in
	'"'?*'"') break ;;
	esac
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "FAIL: no leader at $base/v1/status/leader within ${start_timeout}s (last answer: '$leader')" >&2
		exit 99
	fi
	wait_a_bit
done
echo "agent up: $base leader=$leader (pid $agent_pid, data $tmp/data)"

export CONSUL_HTTP_ADDR="127.0.0.1:$http_port"
export CAIRN_COMPAT_HOST=127.0.0.1
export CAIRN_COMPAT_PORT="$http_port"
export CAIRN_COMPAT_NODE=compat

case "$client" in
python)
	/usr/bin/python3 "$here/test_python_consul.py"
	rc=$?
	;;
node)
	(cd "$here" && node --test test_node_consul.js)
	rc=$?
	;;
esac
exit "$rc"
