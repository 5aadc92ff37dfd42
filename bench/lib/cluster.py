#!/usr/bin/python3
"""bench/lib/cluster.py: start and stop a 3-server Cairn cluster or a
3-member etcd 3.4 cluster on loopback, for benchmarks (bench/cluster,
bench/lock, bench/txn ...).

As a module:
    sys.path.insert(0, os.path.join(REPO, "bench", "lib"))
    import cluster
    c = cluster.CairnCluster(build_dir, tmp_dir, n=3)   # or cluster.EtcdCluster(tmp_dir, n=3)
    c.start()                   # waits for an agreed leader (raises RuntimeError)
    c.http_ports                # client ports, one per member
    c.leader()                  # index of the leader every live member agrees on, or None
    c.kill9(i); c.restart(i)    # SIGKILL member i with all its processes; start it again
    c.stop()                    # SIGTERM, then SIGKILL after 15 s; also at exit

From a shell (see cluster.sh, which wraps these):
    bench/lib/cluster.py start cairn|etcd DIR [BUILD] [N]  -> prints sourceable variables
    bench/lib/cluster.py leader DIR                        -> the leader's client port
    bench/lib/cluster.py kill9 DIR INDEX | restart DIR INDEX
    bench/lib/cluster.py stop DIR
The shell form keeps the cluster's description in DIR/cluster.json; the
processes run detached until `stop`.

Data lives on disk under the given directory (use /var/tmp, not a tmpfs:
both systems fsync every write). Cairn agents run with -log-level warn,
etcd with --log-level warn; logs go to DIR/<member>.log.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

START_TIMEOUT = float(os.environ.get("BENCH_START_TIMEOUT", "60"))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_ports(n):
    """n distinct ports free for TCP and UDP on 127.0.0.1."""
    held, ports = [], []
    while len(ports) < n:
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
        ports.append(port)
    for s in held:
        s.close()
    return ports


def http_req(port, method, path, body=None, timeout=5.0, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def children_of(pid):
    """Direct children of pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
        if ppid == pid:
            out.append(int(d))
    return out


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Member:
    """One member process in its own session (process group)."""

    def __init__(self, name, argv, logpath, pid=None):
        self.name, self.argv, self.logpath = name, argv, logpath
        self.pid = pid
        self.proc = None

    def launch(self):
        with open(self.logpath, "ab") as logf:
            self.proc = subprocess.Popen(self.argv, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid

    def alive(self):
        if self.proc is not None:
            return self.proc.poll() is None
        return self.pid is not None and pid_alive(self.pid)

    def _reap(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None:
                if self.proc.poll() is not None:
                    return True
            elif not pid_alive(self.pid):
                return True
            time.sleep(0.02)  # polling for exit
        return False

    def kill9(self):
        """SIGKILL the member and every process it started (a Cairn agent's
        daemons run in their own process groups), all at once."""
        if not self.pid:
            return
        # A Cairn agent's daemons get SIGTERM when it dies (PDEATHSIG) and
        # raftd would then leave gracefully, handing leadership over: stop
        # the agent, kill its children, then the agent, so all vanish.
        try:
            os.kill(self.pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass
        pids = children_of(self.pid) + [self.pid]
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap(10)
        for p in pids[:-1]:
            deadline = time.monotonic() + 10
            while pid_alive(p) and time.monotonic() < deadline:
                time.sleep(0.02)

    def stop(self):
        if not self.pid or not self.alive():
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if not self._reap(15):
            log("%s did not stop on SIGTERM within 15 s; SIGKILL" % self.name)
            self.kill9()

    def tail(self, n=20):
        try:
            with open(self.logpath, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


class Cluster:
    kind = "?"

    def __init__(self, tmp, n):
        self.tmp, self.n = tmp, n
        self.members = []
        self.http_ports = []
        self.dead = set()

    def wait_leader(self, timeout=None):
        deadline = time.monotonic() + (START_TIMEOUT if timeout is None else timeout)
        while time.monotonic() < deadline:
            for i, m in enumerate(self.members):
                if i not in self.dead and not m.alive():
                    raise RuntimeError("%s exited:\n%s" % (m.name, m.tail()))
            lead = self.leader()
            if lead is not None:
                return lead
            time.sleep(0.05)  # polling for an election
        raise RuntimeError("%s cluster: no agreed leader within %.0fs\n%s" % (
            self.kind, START_TIMEOUT, "\n".join(m.tail(10) for m in self.members)))

    def start(self):
        for m in self.members:
            m.launch()
        return self.wait_leader()

    def kill9(self, i):
        self.dead.add(i)
        self.members[i].kill9()

    def restart(self, i):
        self.members[i].launch()
        self.dead.discard(i)

    def stop(self):
        for m in reversed(self.members):
            m.stop()

    def describe(self):
        return {"kind": self.kind, "tmp": self.tmp, "n": self.n, "http_ports": self.http_ports,
                "members": [{"name": m.name, "argv": m.argv, "log": m.logpath, "pid": m.pid}
                            for m in self.members], "extra": self.extra()}

    def extra(self):
        return {}


class CairnCluster(Cluster):
    """n servers: cairn agent -server -bootstrap-expect n, members 2..n with
    -retry-join <member 1's LAN gossip address>."""

    kind = "cairn"

    def __init__(self, build, tmp, n=3, extra_args=None, _restore=None):
        super().__init__(tmp, n)
        self.build = build
        cairn = os.path.join(build, "cli", "cairn")
        if not os.access(cairn, os.X_OK):
            raise RuntimeError("%s not found: build first (see bench/README.md)" % cairn)
        if _restore:
            self.server_ports = _restore["extra"]["server_ports"]
            self.http_ports = _restore["http_ports"]
            for md in _restore["members"]:
                self.members.append(Member(md["name"], md["argv"], md["log"], md["pid"]))
            return
        ports = [free_ports(5) for _ in range(n)]
        self.server_ports = [p[2] for p in ports]
        self.http_ports = [p[0] for p in ports]
        # Gossip joins, as Consul's retry_join (the servers find each other
        # in the LAN pool, failed members turn serfHealth critical): every
        # server but the first joins the first's LAN port.
        first_lan = ports[0][3]
        for i, (http_p, dns_p, server_p, lan_p, wan_p) in enumerate(ports):
            joins = ["-retry-join", "127.0.0.1:%d" % first_lan] if i > 0 else []
            name = "srv%d" % (i + 1)
            argv = [cairn, "agent", "-server", "-bootstrap-expect", str(n),
                    "-data-dir", os.path.join(tmp, name), "-node", name, "-log-level", os.environ.get("BENCH_LOG_LEVEL", "warn"),
                    "-bind", "127.0.0.1", "-client", "127.0.0.1",
                    "-http-port", str(http_p), "-dns-port", str(dns_p), "-server-port", str(server_p),
                    "-serf-lan-port", str(lan_p), "-serf-wan-port", str(wan_p)] + joins + (extra_args or [])
            self.members.append(Member(name, argv, os.path.join(tmp, name + ".log")))

    def extra(self):
        return {"server_ports": self.server_ports, "build": self.build}

    def leader(self):
        """Index of the leader every live server names (by its server port)."""
        seen = None
        for i, port in enumerate(self.http_ports):
            if i in self.dead:
                continue
            try:
                st, body = http_req(port, "GET", "/v1/status/leader", timeout=2)
            except (OSError, http.client.HTTPException):
                return None
            addr = body.strip().strip(b'"').decode()
            if st != 200 or not addr or (seen is not None and addr != seen):
                return None
            seen = addr
        for i, p in enumerate(self.server_ports):
            if seen == "127.0.0.1:%d" % p and i not in self.dead:
                return i
        return None

    def put(self, i, key, value, timeout=5.0):
        """One acknowledged write through member i: True when answered 200 true."""
        st, body = http_req(self.http_ports[i], "PUT", "/v1/kv/" + key, body=value, timeout=timeout)
        return st == 200 and body.strip() == b"true"


class EtcdCluster(Cluster):
    """n etcd members (Debian etcd-server 3.4), static bootstrap."""

    kind = "etcd"

    def __init__(self, tmp, n=3, _restore=None):
        super().__init__(tmp, n)
        etcd = subprocess.run(["which", "etcd"], stdout=subprocess.PIPE, text=True).stdout.strip() or "/usr/bin/etcd"
        if _restore:
            self.http_ports = _restore["http_ports"]
            self.ids = _restore["extra"].get("ids", {})
            for md in _restore["members"]:
                m = Member(md["name"], md["argv"], md["log"], md["pid"])
                self.members.append(m)
            return
        ports = [free_ports(2) for _ in range(n)]
        self.http_ports = [p[0] for p in ports]
        self.ids = {}
        initial = ",".join("etcd%d=http://127.0.0.1:%d" % (i + 1, p[1]) for i, p in enumerate(ports))
        for i, (client_p, peer_p) in enumerate(ports):
            name = "etcd%d" % (i + 1)
            argv = [etcd, "--name", name, "--data-dir", os.path.join(tmp, name),
                    "--listen-client-urls", "http://127.0.0.1:%d" % client_p,
                    "--advertise-client-urls", "http://127.0.0.1:%d" % client_p,
                    "--listen-peer-urls", "http://127.0.0.1:%d" % peer_p,
                    "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer_p,
                    "--initial-cluster", initial, "--initial-cluster-state", "new",
                    "--initial-cluster-token", "bench-" + os.path.basename(tmp),
                    "--logger", "zap", "--log-level", "warn"]
            self.members.append(Member(name, argv, os.path.join(tmp, name + ".log")))

    def extra(self):
        return {"ids": self.ids}

    def _status(self, i):
        st, body = http_req(self.http_ports[i], "POST", "/v3/maintenance/status", body="{}", timeout=2,
                            headers={"Content-Type": "application/json"})
        if st != 200:
            return None
        return json.loads(body)

    def leader(self):
        """Index of the member every live member names leader."""
        seen = None
        for i in range(self.n):
            if i in self.dead:
                continue
            try:
                s = self._status(i)
            except (OSError, http.client.HTTPException, ValueError):
                return None
            if not s or not s.get("leader"):
                return None
            self.ids[str(i)] = s["header"]["member_id"]
            if seen is not None and s["leader"] != seen:
                return None
            seen = s["leader"]
        for i in range(self.n):
            if self.ids.get(str(i)) == seen and i not in self.dead:
                return i
        return None

    def put(self, i, key, value, timeout=5.0):
        import base64
        body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                           "value": base64.b64encode(value).decode()})
        st, data = http_req(self.http_ports[i], "POST", "/v3/kv/put", body=body, timeout=timeout,
                            headers={"Content-Type": "application/json"})
        return st == 200 and b"header" in data


def load(dirpath):
    with open(os.path.join(dirpath, "cluster.json")) as f:
        d = json.load(f)
    if d["kind"] == "cairn":
        c = CairnCluster(d["extra"]["build"], d["tmp"], d["n"], _restore=d)
    else:
        c = EtcdCluster(d["tmp"], d["n"], _restore=d)
    c.dead = set(d.get("dead", []))
    return c


def save(c, dirpath):
    d = c.describe()
    d["dead"] = sorted(c.dead)
    with open(os.path.join(dirpath, "cluster.json"), "w") as f:
        json.dump(d, f)


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    cmd = argv[1]
    if cmd == "start":
        if len(argv) < 4:
            raise SystemExit(__doc__)
        kind, dirpath = argv[2], os.path.abspath(argv[3])
        os.makedirs(dirpath, exist_ok=True)
        n = int(argv[5]) if len(argv) > 5 else 3
        if kind == "cairn":
            build = os.path.abspath(argv[4] if len(argv) > 4 else "build")
            c = CairnCluster(build, dirpath, n)
        elif kind == "etcd":
            c = EtcdCluster(dirpath, n)
        else:
            raise SystemExit("kind must be cairn or etcd")
        try:
            lead = c.start()
        except RuntimeError:
            c.stop()
            raise
        save(c, dirpath)
        print("CLUSTER_DIR=%s" % dirpath)
        print("CLUSTER_KIND=%s" % kind)
        print("CLUSTER_HTTP_PORTS='%s'" % " ".join(str(p) for p in c.http_ports))
        print("CLUSTER_LEADER_PORT=%d" % c.http_ports[lead])
        return 0
    dirpath = os.path.abspath(argv[2])
    c = load(dirpath)
    if cmd == "leader":
        lead = c.wait_leader()
        print(c.http_ports[lead])
    elif cmd == "kill9":
        c.kill9(int(argv[3]))
        save(c, dirpath)
    elif cmd == "restart":
        c.restart(int(argv[3]))
        save(c, dirpath)
        c.wait_leader()
    elif cmd == "stop":
        c.stop()
    else:
        raise SystemExit("unknown command %r" % cmd)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except RuntimeError as e:
        log("cluster.py: %s" % e)
        sys.exit(1)
