#!/usr/bin/python3
"""Compatibility checks: Debian's python3-consul (python-consul 0.7.1)
against a running Cairn agent.

Run by tests/compat/run.sh, which starts a fresh agent and exports
CONSUL_HTTP_ADDR=host:port (read by consul.Consul() itself) and
CAIRN_COMPAT_NODE (the agent's node name). Must be run with /usr/bin/python3
so that Debian's python3-consul is the one imported.

Every check prints one line ("ok - name" or "FAIL - name: reason"); the
last line is "N passed, M failed". Exit status 0 only when every check
passed. Each check uses its own keys so that one failure does not cascade.
Only the client's public API is used, plus its own requests session for the
header-level facts listed in shared/CLIENTS.md that the client relies on.
"""

import base64
import json
import os
import re
import sys
import threading
import time
import traceback

import consul

NODE = os.environ.get("CAIRN_COMPAT_NODE", "compat")
# Every key lives under a per-run prefix, so the suite can also be re-run
# against a long-lived agent.
ROOT = "py-%d/" % time.time_ns()

c = consul.Consul()  # host:port from CONSUL_HTTP_ADDR
session = c.http.session  # the client's own requests session
BASE = c.http.base_uri

results = []


def check(name):
    """Registers and runs a check; an AssertionError or any exception is a
    failure with its message."""

    def deco(fn):
        try:
            fn()
        except AssertionError as e:
            results.append(False)
            print("FAIL - %s: %s" % (name, e or "assertion failed"), flush=True)
            return fn
        except Exception as e:  # noqa: BLE001 - a crash is a failed check
            results.append(False)
            print("FAIL - %s: %s: %s" % (name, type(e).__name__, e), flush=True)
            traceback.print_exc(limit=3, file=sys.stdout)
            return fn
        results.append(True)
        print("ok - %s" % name, flush=True)
        return fn

    return deco


def eq(got, want, what):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


def positive_index(idx, what="X-Consul-Index"):
    assert idx is not None, "%s missing" % what
    assert re.fullmatch(r"[0-9]+", str(idx)), "%s not an integer: %r" % (what, idx)
    assert int(idx) > 0, "%s must never be 0" % what
    return int(idx)


class Blocking(threading.Thread):
    """A kv.get with index/wait running in the background."""

    def __init__(self, key, index, wait):
        super().__init__(daemon=True)
        self.key, self.index, self.wait = key, index, wait
        self.result = None
        self.error = None
        self.elapsed = None

    def run(self):
        t0 = time.monotonic()
        try:
            self.result = c.kv.get(self.key, index=self.index, wait=self.wait)
        except Exception as e:  # noqa: BLE001
            self.error = e
        self.elapsed = time.monotonic() - t0


# ---------------------------------------------------------------- status


@check("status.leader returns a host:port string")
def _():
    leader = c.status.leader()
    assert isinstance(leader, str), "leader is %r" % (leader,)
    host, _, port = leader.rpartition(":")
    assert host and port.isdigit(), "leader %r is not host:port" % leader


@check("status.peers lists exactly the leader")
def _():
    peers = c.status.peers()
    eq(peers, [c.status.leader()], "peers")


# ---------------------------------------------------------------- agent


@check("agent.self Config has Datacenter/NodeName/NodeID/Server/Version")
def _():
    s = c.agent.self()
    cfg = s["Config"]
    eq(cfg["Datacenter"], "dc1", "Config.Datacenter")
    eq(cfg["NodeName"], NODE, "Config.NodeName")
    eq(cfg["Server"], True, "Config.Server")
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", cfg["NodeID"]
    ), "Config.NodeID not a UUID: %r" % cfg["NodeID"]
    assert isinstance(cfg["Version"], str) and cfg["Version"], "Config.Version empty"


@check("agent.self Member describes this node")
def _():
    m = c.agent.self()["Member"]
    eq(m["Name"], NODE, "Member.Name")
    assert m["Addr"], "Member.Addr empty"
    assert isinstance(m["Port"], int) and m["Port"] > 0, "Member.Port %r" % m["Port"]
    eq(m["Status"], 1, "Member.Status (1 = alive)")


@check("agent.members lists the local member, alive, with Consul's server tags")
def _():
    members = c.agent.members()
    assert isinstance(members, list), "members is %r" % (members,)
    names = [m["Name"] for m in members]
    eq(names, [NODE], "member names")
    m = members[0]
    eq(m["Status"], 1, "Status (1 = alive)")
    eq(m["Tags"].get("role"), "consul", "Tags.role")
    eq(m["Tags"].get("dc"), "dc1", "Tags.dc")


# ---------------------------------------------------------------- KV basics


@check("kv.get of a missing key returns (index, None) with a non-zero index")
def _():
    idx, v = c.kv.get(ROOT + "missing")
    eq(v, None, "value")
    positive_index(idx)


@check("KV 404 carries X-Consul-Index, X-Consul-KnownLeader, X-Consul-LastContact")
def _():
    r = session.get(BASE + "/v1/kv/" + ROOT + "missing")
    eq(r.status_code, 404, "status")
    positive_index(r.headers.get("X-Consul-Index"))
    eq(r.headers.get("X-Consul-KnownLeader"), "true", "X-Consul-KnownLeader")
    assert r.headers.get("X-Consul-LastContact") is not None, "X-Consul-LastContact missing"


@check("kv.put returns True, kv.get returns the entry with Consul's fields")
def _():
    eq(c.kv.put(ROOT + "a", "hello"), True, "put")
    idx, d = c.kv.get(ROOT + "a")
    eq(d["Key"], ROOT + "a", "Key")
    eq(d["Value"], b"hello", "Value")
    eq(d["Flags"], 0, "Flags")
    eq(d["LockIndex"], 0, "LockIndex")
    positive_index(d["CreateIndex"], "CreateIndex")
    eq(d["ModifyIndex"], d["CreateIndex"], "ModifyIndex of a new key")
    assert positive_index(idx) >= d["ModifyIndex"], "X-Consul-Index %s < ModifyIndex %s" % (
        idx,
        d["ModifyIndex"],
    )


@check("KV GET answers application/json, a one-element list, base64 Value")
def _():
    c.kv.put(ROOT + "json", "hello")
    r = session.get(BASE + "/v1/kv/" + ROOT + "json")
    eq(r.status_code, 200, "status")
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("application/json"), "Content-Type %r" % ctype
    positive_index(r.headers.get("X-Consul-Index"))
    eq(r.headers.get("X-Consul-KnownLeader"), "true", "X-Consul-KnownLeader")
    body = r.json()
    assert isinstance(body, list) and len(body) == 1, "body %r" % (body,)
    eq(body[0]["Value"], base64.b64encode(b"hello").decode(), "Value (base64)")


@check("PUT and DELETE answer the JSON literals true/false as application/json")
def _():
    r = session.put(BASE + "/v1/kv/" + ROOT + "lit", data=b"x")
    eq((r.status_code, r.text.strip()), (200, "true"), "PUT")
    assert r.headers.get("Content-Type", "").startswith("application/json"), (
        "PUT Content-Type %r" % r.headers.get("Content-Type")
    )
    r = session.put(BASE + "/v1/kv/" + ROOT + "lit?cas=0", data=b"y")
    eq((r.status_code, r.text.strip()), (200, "false"), "PUT cas=0 on an existing key")
    r = session.delete(BASE + "/v1/kv/" + ROOT + "lit")
    eq((r.status_code, r.text.strip()), (200, "true"), "DELETE")


@check("?raw returns the bare value")
def _():
    c.kv.put(ROOT + "raw", "hello raw")
    r = session.get(BASE + "/v1/kv/" + ROOT + "raw?raw")
    eq(r.status_code, 200, "status")
    eq(r.content, b"hello raw", "body")


@check("updating a key bumps ModifyIndex and keeps CreateIndex")
def _():
    c.kv.put(ROOT + "upd", "one")
    _, d1 = c.kv.get(ROOT + "upd")
    eq(c.kv.put(ROOT + "upd", "two"), True, "second put")
    _, d2 = c.kv.get(ROOT + "upd")
    eq(d2["Value"], b"two", "Value")
    eq(d2["CreateIndex"], d1["CreateIndex"], "CreateIndex")
    assert d2["ModifyIndex"] > d1["ModifyIndex"], "ModifyIndex %s !> %s" % (
        d2["ModifyIndex"],
        d1["ModifyIndex"],
    )


@check("flags are stored and returned")
def _():
    eq(c.kv.put(ROOT + "flags", "x", flags=42), True, "put flags=42")
    eq(c.kv.get(ROOT + "flags")[1]["Flags"], 42, "Flags")


@check("flags cover Consul's full uint64 range (2^64-1 comes back unsigned)")
def _():
    big = 2**64 - 1
    eq(c.kv.put(ROOT + "flags64", "x", flags=big), True, "put flags=2^64-1")
    eq(c.kv.get(ROOT + "flags64")[1]["Flags"], big, "Flags")


@check("an empty value comes back as JSON null (Value None)")
def _():
    eq(c.kv.put(ROOT + "empty", ""), True, "put")
    _, d = c.kv.get(ROOT + "empty")
    eq(d["Value"], None, "Value")
    raw = session.get(BASE + "/v1/kv/" + ROOT + "empty").json()
    assert "Value" in raw[0] and raw[0]["Value"] is None, "raw entry %r" % (raw[0],)


@check("binary values round-trip byte for byte")
def _():
    blob = bytes(range(256)) * 4
    eq(c.kv.put(ROOT + "bin", blob), True, "put")
    eq(c.kv.get(ROOT + "bin")[1]["Value"], blob, "Value")


@check("a 512 KiB value is accepted; a larger one gets 413 and nothing is written")
def _():
    big = b"v" * (512 * 1024)
    eq(c.kv.put(ROOT + "big", big), True, "put 512 KiB")
    eq(len(c.kv.get(ROOT + "big")[1]["Value"]), len(big), "length read back")
    r = session.put(BASE + "/v1/kv/" + ROOT + "toobig", data=b"v" * (512 * 1024 + 1))
    eq(r.status_code, 413, "status of a 512 KiB + 1 PUT")
    assert r.text.strip(), "413 without a message"
    eq(c.kv.get(ROOT + "toobig")[1], None, "the oversized key")


# ---------------------------------------------------------------- CAS


@check("cas=0 creates only when absent")
def _():
    eq(c.kv.put(ROOT + "cas0", "first", cas=0), True, "cas=0 on a new key")
    eq(c.kv.put(ROOT + "cas0", "second", cas=0), False, "cas=0 on an existing key")
    eq(c.kv.get(ROOT + "cas0")[1]["Value"], b"first", "Value")


@check("cas=<ModifyIndex> writes; a stale index does not")
def _():
    c.kv.put(ROOT + "cas", "v1")
    mod = c.kv.get(ROOT + "cas")[1]["ModifyIndex"]
    eq(c.kv.put(ROOT + "cas", "bad", cas=mod + 1000), False, "cas with a wrong index")
    eq(c.kv.get(ROOT + "cas")[1]["Value"], b"v1", "Value after failed cas")
    eq(c.kv.put(ROOT + "cas", "v2", cas=mod), True, "cas with the ModifyIndex")
    _, d = c.kv.get(ROOT + "cas")
    eq(d["Value"], b"v2", "Value after cas")
    assert d["ModifyIndex"] > mod, "ModifyIndex did not move"
    eq(c.kv.put(ROOT + "cas", "v3", cas=mod), False, "cas with the old index")


# ---------------------------------------------------------------- keys / recurse


@check("keys=True lists every key under a prefix, sorted")
def _():
    for k in (ROOT + "dir/b", ROOT + "dir/a", ROOT + "dir/sub/x", ROOT + "dir/sub/y", ROOT + "dirt"):
        c.kv.put(k, k)
    _, keys = c.kv.get(ROOT + "dir/", keys=True)
    eq(keys, [ROOT + "dir/a", ROOT + "dir/b", ROOT + "dir/sub/x", ROOT + "dir/sub/y"], "keys")


@check("keys with separator='/' rolls up sub-folders")
def _():
    for k in (ROOT + "sep/b", ROOT + "sep/a", ROOT + "sep/sub/x", ROOT + "sep/sub/y"):
        c.kv.put(k, k)
    _, keys = c.kv.get(ROOT + "sep/", keys=True, separator="/")
    eq(keys, [ROOT + "sep/a", ROOT + "sep/b", ROOT + "sep/sub/"], "keys")


@check("keys of an empty prefix is (index, None) (404)")
def _():
    idx, keys = c.kv.get(ROOT + "nothing-here/", keys=True)
    eq(keys, None, "keys")
    positive_index(idx)


@check("recurse returns every entry under the prefix, sorted, values decoded")
def _():
    for k in (ROOT + "rec/2", ROOT + "rec/1", ROOT + "rec/deep/3"):
        c.kv.put(k, "val-" + k)
    c.kv.put(ROOT + "recx", "outside")
    idx, items = c.kv.get(ROOT + "rec/", recurse=True)
    positive_index(idx)
    eq([i["Key"] for i in items], [ROOT + "rec/1", ROOT + "rec/2", ROOT + "rec/deep/3"], "keys")
    eq([i["Value"] for i in items], [("val-" + ROOT + k).encode() for k in ("rec/1", "rec/2", "rec/deep/3")], "values")
    assert positive_index(idx) >= max(i["ModifyIndex"] for i in items), "index below an entry's ModifyIndex"


@check("bare ?recurse and ?keys flags (no value) are on")
def _():
    for k in ("bare/1", "bare/2"):
        c.kv.put(ROOT + k, "b")
    r = session.get(BASE + "/v1/kv/" + ROOT + "bare/?recurse")
    eq(r.status_code, 200, "?recurse status")
    eq([e["Key"] for e in r.json()], [ROOT + "bare/1", ROOT + "bare/2"], "?recurse keys")
    r = session.get(BASE + "/v1/kv/" + ROOT + "bare/?keys")
    eq(r.status_code, 200, "?keys status")
    eq(r.json(), [ROOT + "bare/1", ROOT + "bare/2"], "?keys")


@check("?index=0&wait=30s answers at once (as node-consul's first watch call needs)")
def _():
    # python-consul drops index=0 itself, so this one goes through its session.
    c.kv.put(ROOT + "idx0", "z")
    t0 = time.monotonic()
    r = session.get(BASE + "/v1/kv/" + ROOT + "idx0?index=0&wait=30s", timeout=20)
    elapsed = time.monotonic() - t0
    eq(r.status_code, 200, "status")
    assert elapsed < 10, "index=0 blocked for %.1fs" % elapsed
    positive_index(r.headers.get("X-Consul-Index"))


# ---------------------------------------------------------------- delete


@check("delete removes a key and returns True")
def _():
    c.kv.put(ROOT + "del", "x")
    eq(c.kv.delete(ROOT + "del"), True, "delete")
    eq(c.kv.get(ROOT + "del")[1], None, "value after delete")


@check("delete of a missing key returns True")
def _():
    eq(c.kv.delete(ROOT + "never-existed"), True, "delete")


@check("delete with cas: wrong index False, ModifyIndex True")
def _():
    c.kv.put(ROOT + "delcas", "x")
    mod = c.kv.get(ROOT + "delcas")[1]["ModifyIndex"]
    eq(c.kv.delete(ROOT + "delcas", cas=mod + 1000), False, "delete with a wrong index")
    assert c.kv.get(ROOT + "delcas")[1] is not None, "key deleted by a failed cas"
    eq(c.kv.delete(ROOT + "delcas", cas=mod), True, "delete with the ModifyIndex")
    eq(c.kv.get(ROOT + "delcas")[1], None, "value after cas delete")


@check("delete recurse removes the prefix and only the prefix")
def _():
    for k in (ROOT + "rm/a", ROOT + "rm/b/c", ROOT + "rmx"):
        c.kv.put(k, "x")
    eq(c.kv.delete(ROOT + "rm/", recurse=True), True, "delete recurse")
    eq(c.kv.get(ROOT + "rm/", keys=True)[1], None, "keys left under the prefix")
    eq(c.kv.get(ROOT + "rmx")[1]["Value"], b"x", "sibling outside the prefix")


# ---------------------------------------------------------------- encoding


@check("keys with spaces and UTF-8 travel percent-encoded and come back intact")
def _():
    for k in (ROOT + "sp ace", ROOT + "ünï cødé", ROOT + "q?x=1&y#z"):
        # bytes: requests would send a str body as Latin-1
        eq(c.kv.put(k, k.encode()), True, "put %r" % k)
        _, d = c.kv.get(k)
        assert d is not None, "get %r returned nothing" % k
        eq(d["Key"], k, "Key")
        eq(d["Value"], k.encode(), "Value")


@check("a %2F-encoded path means the same key as '/'")
def _():
    c.kv.put(ROOT + "enc/key", "slash")
    r = session.get(BASE + "/v1/kv/" + ROOT.replace("/", "%2F") + "enc%2Fkey")
    eq(r.status_code, 200, "status")
    eq(r.json()[0]["Key"], ROOT + "enc/key", "Key")


# ---------------------------------------------------------------- consistency / params


@check("consistent and stale reads return the value; stale reports KnownLeader")
def _():
    c.kv.put(ROOT + "cons", "c")
    for mode in ("consistent", "stale"):
        cc = consul.Consul(consistency=mode)
        eq(cc.kv.get(ROOT + "cons")[1]["Value"], b"c", "%s read" % mode)
    r = session.get(BASE + "/v1/kv/" + ROOT + "cons?stale")
    eq(r.status_code, 200, "?stale status")
    eq(r.headers.get("X-Consul-KnownLeader"), "true", "X-Consul-KnownLeader")
    assert r.headers.get("X-Consul-LastContact") is not None, "X-Consul-LastContact missing"


@check("dc=dc1 (this datacenter) is accepted")
def _():
    c.kv.put(ROOT + "dc", "d")
    eq(c.kv.get(ROOT + "dc", dc="dc1")[1]["Value"], b"d", "Value")


@check("a bad index parameter is 400 text/plain, raised as BadRequest")
def _():
    try:
        c.kv.get(ROOT + "a", index="notanumber")
    except consul.base.BadRequest:
        pass
    else:
        raise AssertionError("no BadRequest raised")
    r = session.get(BASE + "/v1/kv/" + ROOT + "a?index=notanumber")
    eq(r.status_code, 400, "status")
    assert r.headers.get("Content-Type", "").startswith("text/plain"), (
        "Content-Type %r" % r.headers.get("Content-Type")
    )
    assert r.text.strip(), "empty 400 body"


@check("wrong method is 405, unknown path is 404")
def _():
    eq(session.post(BASE + "/v1/status/leader").status_code, 405, "POST /v1/status/leader")
    eq(session.get(BASE + "/v1/no/such/endpoint").status_code, 404, "GET unknown path")


# ---------------------------------------------------------------- blocking queries


@check("a blocking get parks, then wakes with a larger index on a write")
def _():
    c.kv.put(ROOT + "watch", "v1")
    idx, d = c.kv.get(ROOT + "watch")
    t = Blocking(ROOT + "watch", idx, "30s")
    t.start()
    t.join(0.5)
    assert t.is_alive(), "returned without a change (after %.2fs): %r" % (t.elapsed or 0, t.result)
    c.kv.put(ROOT + "watch", "v2")
    t.join(10)
    assert not t.is_alive(), "did not wake within 10 s of the write"
    assert t.error is None, "error %r" % (t.error,)
    nidx, nd = t.result
    assert int(nidx) > int(idx), "index %s !> %s" % (nidx, idx)
    eq(nd["Value"], b"v2", "Value")


@check("a blocking get on a missing key wakes when the key is created")
def _():
    idx, d = c.kv.get(ROOT + "watch-new")
    eq(d, None, "value before")
    t = Blocking(ROOT + "watch-new", idx, "30s")
    t.start()
    t.join(0.5)
    assert t.is_alive(), "returned without a change: %r" % (t.result,)
    c.kv.put(ROOT + "watch-new", "born")
    t.join(10)
    assert not t.is_alive(), "did not wake within 10 s of the write"
    assert t.error is None, "error %r" % (t.error,)
    nidx, nd = t.result
    assert int(nidx) > int(idx), "index %s !> %s" % (nidx, idx)
    eq(nd["Value"], b"born", "Value")


@check("a blocking get wakes on delete and reports (index, None)")
def _():
    c.kv.put(ROOT + "watch-del", "x")
    idx, _ = c.kv.get(ROOT + "watch-del")
    t = Blocking(ROOT + "watch-del", idx, "30s")
    t.start()
    t.join(0.5)
    assert t.is_alive(), "returned without a change: %r" % (t.result,)
    c.kv.delete(ROOT + "watch-del")
    t.join(10)
    assert not t.is_alive(), "did not wake within 10 s of the delete"
    assert t.error is None, "error %r" % (t.error,)
    nidx, nd = t.result
    eq(nd, None, "value")
    assert int(nidx) > int(idx), "index %s !> %s" % (nidx, idx)


@check("a blocking get with no change returns after wait (not before, not long after)")
def _():
    c.kv.put(ROOT + "quiet", "q")
    idx, _ = c.kv.get(ROOT + "quiet")
    t = Blocking(ROOT + "quiet", idx, "2s")
    t.start()
    t.join(2 + 2 / 16 + 3)
    assert not t.is_alive(), "still blocked well after wait=2s"
    assert t.error is None, "error %r" % (t.error,)
    nidx, nd = t.result
    assert t.elapsed >= 1.9, "returned after %.2fs, before the 2s wait" % t.elapsed
    eq(int(nidx), int(idx), "index after a quiet wait")
    eq(nd["Value"], b"q", "Value")


@check("consul-template style ?index&stale=&wait=NNNms is accepted")
def _():
    c.kv.put(ROOT + "ct", "t")
    idx = positive_index(session.get(BASE + "/v1/kv/" + ROOT + "ct").headers.get("X-Consul-Index"))
    t0 = time.monotonic()
    r = session.get(BASE + "/v1/kv/" + ROOT + "ct?index=%d&stale=&wait=500ms" % idx, timeout=10)
    elapsed = time.monotonic() - t0
    eq(r.status_code, 200, "status")
    assert elapsed >= 0.45, "returned after %.2fs, before wait=500ms" % elapsed
    eq(json.loads(r.text)[0]["Key"], ROOT + "ct", "Key")


# ---- catalog, health and agent services (issue 5) --------------------------

SUF = "%d" % (time.time_ns() % 10**9)


@check("agent.service.register with a TTL check; agent.services; ttl_pass makes it passing")
def _():
    name = "py-web-" + SUF
    assert c.agent.service.register(name, service_id=name + "-1", address="127.0.0.1", port=8080,
                                    tags=["v1"], check=consul.Check.ttl("30s")) is True
    svcs = c.agent.services()
    eq(svcs[name + "-1"]["Service"], name, "Service")
    eq(svcs[name + "-1"]["Port"], 8080, "Port")
    eq(svcs[name + "-1"]["Tags"], ["v1"], "Tags")
    checks = c.agent.checks()
    eq(checks["service:%s-1" % name]["Status"], "critical", "initial TTL status")
    # python-consul 0.7.1 sends GET here; Consul 1.x answers 405 and so do we.
    assert c.agent.check.ttl_pass("service:%s-1" % name, "all good") is False
    eq(session.get(BASE + "/v1/agent/check/pass/service:%s-1" % name).status_code, 405, "GET pass")
    eq(session.put(BASE + "/v1/agent/check/pass/service%%3A%s-1?note=all+good" % name).status_code,
       200, "PUT pass")
    eq(c.agent.checks()["service:%s-1" % name]["Output"], "all good", "Output")
    deadline = time.monotonic() + 10
    while True:
        _, nodes = c.health.service(name, passing=True)
        if len(nodes) == 1:
            break
        assert time.monotonic() < deadline, "never passing in the catalog"
        time.sleep(0.1)
    eq(nodes[0]["Service"]["ID"], name + "-1", "Service.ID")
    eq(nodes[0]["Node"]["Node"], NODE, "Node.Node")
    eq(nodes[0]["Checks"][0]["Status"], "passing", "check status")


@check("agent.service.maintenance and deregister reach the health API")
def _():
    name = "py-mnt-" + SUF
    c.agent.service.register(name, check=consul.Check.ttl("30s"))
    eq(session.put(BASE + "/v1/agent/check/pass/service:" + name).status_code, 200, "PUT pass")
    assert c.agent.service.maintenance(name, "true", "deploy") is True
    ids = [k for k in c.agent.checks()]
    assert "_service_maintenance:" + name in ids, ids

    def wait_count(n, passing):
        deadline = time.monotonic() + 10
        while True:
            _, nodes = c.health.service(name, passing=passing)
            if len(nodes) == n:
                return nodes
            assert time.monotonic() < deadline, "want %d instances, have %d" % (n, len(nodes))
            time.sleep(0.1)

    wait_count(0, True)
    c.agent.service.maintenance(name, "false")
    wait_count(1, True)
    # python-consul 0.7.1 deregisters with GET: 405 from Consul 1.x and from us.
    assert c.agent.service.deregister(name) is False
    eq(session.put(BASE + "/v1/agent/service/deregister/" + name).status_code, 200, "PUT deregister")
    wait_count(0, False)


@check("catalog.register / service / services / node / nodes / deregister")
def _():
    node = "py-ext-" + SUF
    assert c.catalog.register(node, "10.7.0.1",
                              service={"Service": "py-db-" + SUF, "ID": "db1", "Port": 5432,
                                       "Tags": ["primary"]},
                              check={"CheckID": "db-alive", "Name": "db alive",
                                     "Status": "passing", "ServiceID": "db1"}) is True
    idx, nodes = c.catalog.service("py-db-" + SUF)
    assert int(idx) > 0, idx
    eq(len(nodes), 1, "instances")
    eq(nodes[0]["ServiceID"], "db1", "ServiceID")
    eq(nodes[0]["ServicePort"], 5432, "ServicePort")
    eq(nodes[0]["Address"], "10.7.0.1", "Address")
    _, nodes = c.catalog.service("py-db-" + SUF, tag="primary")
    eq(len(nodes), 1, "by tag")
    _, nodes = c.catalog.service("py-db-" + SUF, tag="replica")
    eq(len(nodes), 0, "by another tag")
    _, services = c.catalog.services()
    eq(services["py-db-" + SUF], ["primary"], "services map")
    _, n = c.catalog.node(node)
    eq(n["Node"]["Address"], "10.7.0.1", "node Address")
    eq(n["Services"]["db1"]["Port"], 5432, "node Services")
    _, nodes = c.catalog.nodes()
    assert node in [x["Node"] for x in nodes], nodes
    eq(c.catalog.datacenters(), ["dc1"], "datacenters")
    _, checks = c.health.checks("py-db-" + SUF)
    eq([x["CheckID"] for x in checks], ["db-alive"], "health.checks")
    _, checks = c.health.node(node)
    eq([x["Status"] for x in checks], ["passing"], "health.node")
    _, checks = c.health.state("passing")
    assert "db-alive" in [x["CheckID"] for x in checks], checks
    assert c.catalog.deregister(node) is True
    _, n = c.catalog.node(node)
    eq(n, None, "deregistered node")


@check("a blocking health.service wakes when an instance registers")
def _():
    name = "py-blk-" + SUF
    c.catalog.register("py-blk-a-" + SUF, "10.8.0.1", service={"Service": name})
    idx, nodes = c.health.service(name)
    eq(len(nodes), 1, "before")
    out = {}

    def run():
        out["r"] = c.health.service(name, index=idx, wait="30s")

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.2)
    c.catalog.register("py-blk-b-" + SUF, "10.8.0.2", service={"Service": name})
    t.join(15)
    assert not t.is_alive(), "still blocked after the change"
    nidx, nodes = out["r"]
    assert int(nidx) > int(idx), (nidx, idx)
    eq(len(nodes), 2, "after")


# ---------------------------------------------------------------- txn


@check("txn.put (python-consul 1.x's call: CB.json() on PUT /v1/txn) commits and rolls back")
def _():
    # python-consul 0.7.1 has no c.txn; its HTTP client makes the exact
    # request python-consul 1.x's Txn.put makes.
    def txn(ops):
        return c.http.put(consul.base.CB.json(index=True), "/v1/txn", data=json.dumps(ops))

    k = ROOT + "txn/"
    v = base64.b64encode(b"one").decode()
    idx, out = txn([{"KV": {"Verb": "set", "Key": k + "a", "Value": v}},
                    {"KV": {"Verb": "get", "Key": k + "a"}}])
    positive_index(idx)
    eq(out["Errors"], None, "Errors")
    eq(len(out["Results"]), 2, "Results")
    eq(base64.b64decode(out["Results"][1]["KV"]["Value"]), b"one", "get in txn")
    _, out = txn([{"KV": {"Verb": "set", "Key": k + "b", "Value": v}},
                  {"KV": {"Verb": "check-not-exists", "Key": k + "a"}}])
    eq(out["Results"], None, "Results on rollback")
    eq(out["Errors"][0]["OpIndex"], 1, "OpIndex")
    _, e = c.kv.get(k + "b")
    eq(e, None, "rolled-back set")


passed = sum(1 for r in results if r)
failed = len(results) - passed
print("%d passed, %d failed" % (passed, failed))
sys.exit(0 if failed == 0 and passed > 0 else 1)
