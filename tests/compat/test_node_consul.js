// Compatibility checks: npm's `consul` (node-consul 2.x) against a running
// Cairn agent.
//
// Run by tests/compat/run.sh, which starts a fresh agent and exports
// CAIRN_COMPAT_HOST, CAIRN_COMPAT_PORT (and CONSUL_HTTP_ADDR) and
// CAIRN_COMPAT_NODE. Uses node's built-in test runner: one line per check,
// a summary at the end, exit status 0 only when every check passed.
//
// These checks pin what node-consul itself depends on (shared/CLIENTS.md):
// it parses a body only when it is application/json, shows a text/plain
// error body as the message, needs X-Consul-Index (never 0) for watch(),
// and sends keys through encodeURIComponent, so "a/b" arrives as a%2Fb.
"use strict";

const { EventEmitter } = require("node:events");
const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const Consul = require("consul");

const host = process.env.CAIRN_COMPAT_HOST || "127.0.0.1";
const port = Number(process.env.CAIRN_COMPAT_PORT || 8500);
const NODE = process.env.CAIRN_COMPAT_NODE || "compat";
// Every key lives under a per-run prefix, so the suite can also be re-run
// against a long-lived agent.
const R = `node-${Date.now()}-${process.pid}/`;

const consul = new Consul({ host, port });
// Options that make a call resolve [response, body], so that headers and
// literal bodies can be checked (papi wants ctx to be an EventEmitter).
const withRes = () => ({ ctx: Object.assign(new EventEmitter(), { includeResponse: true }) });

after(() => consul.destroy());

function positiveIndex(res) {
  const h = res.headers["x-consul-index"];
  assert.ok(h !== undefined, "X-Consul-Index missing");
  assert.match(h, /^[0-9]+$/, `X-Consul-Index not an integer: ${h}`);
  const n = BigInt(h);
  assert.ok(n > 0n, "X-Consul-Index must never be 0");
  return n;
}

// Runs a watch on kv.get(key) and returns helpers to wait for its events.
function startWatch(key, wait) {
  const w = consul.watch({
    method: consul.kv.get,
    options: { key, wait },
    maxAttempts: 0,
  });
  const changes = [];
  const errors = [];
  let waiter = null;
  const poke = () => {
    if (waiter) waiter();
  };
  w.on("change", (data, res) => {
    changes.push({ data, index: BigInt(res.headers["x-consul-index"]) });
    poke();
  });
  w.on("error", (err) => {
    errors.push(err);
    poke();
  });
  // Resolves once `n` change events have arrived; rejects on a watch error
  // or after timeoutMs.
  const changesAtLeast = (n, timeoutMs) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiter = null;
        reject(new Error(`watch saw ${changes.length} change(s), wanted ${n} within ${timeoutMs} ms`));
      }, timeoutMs);
      waiter = () => {
        if (errors.length) {
          clearTimeout(timer);
          waiter = null;
          reject(errors[0]);
        } else if (changes.length >= n) {
          clearTimeout(timer);
          waiter = null;
          resolve(changes.slice());
        }
      };
      waiter();
    });
  return { w, changes, errors, changesAtLeast };
}

// ------------------------------------------------------------------ status

test("status.leader returns a host:port string", async () => {
  const leader = await consul.status.leader();
  assert.equal(typeof leader, "string");
  assert.match(leader, /^.+:[0-9]+$/);
});

test("status.peers lists exactly the leader", async () => {
  const leader = await consul.status.leader();
  assert.deepEqual(await consul.status.peers(), [leader]);
});

// ------------------------------------------------------------------ agent

test("agent.self has Config and Member for this node", async () => {
  const self = await consul.agent.self();
  assert.equal(self.Config.Datacenter, "dc1");
  assert.equal(self.Config.NodeName, NODE);
  assert.equal(self.Config.Server, true);
  assert.match(self.Config.NodeID, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.equal(typeof self.Config.Version, "string");
  assert.ok(self.Config.Version.length > 0);
  assert.equal(self.Member.Name, NODE);
  assert.equal(self.Member.Status, 1);
});

test("agent.members lists the local member", async () => {
  const members = await consul.agent.members();
  assert.ok(Array.isArray(members), `members is ${JSON.stringify(members)}`);
  assert.deepEqual(
    members.map((m) => m.Name),
    [NODE],
  );
  assert.equal(members[0].Status, 1);
  assert.equal(members[0].Tags.role, "consul");
  assert.equal(members[0].Tags.dc, "dc1");
});

// ------------------------------------------------------------------ KV

test("kv.get of a missing key resolves undefined, 404 with X-Consul-Index", async () => {
  assert.equal(await consul.kv.get(R + "missing"), undefined);
  const [res, body] = await consul.kv.get({ key: R + "missing", ...withRes() });
  assert.equal(res.statusCode, 404);
  assert.equal(body, undefined);
  positiveIndex(res);
  assert.equal(res.headers["x-consul-knownleader"], "true");
  assert.ok(res.headers["x-consul-lastcontact"] !== undefined, "X-Consul-LastContact missing");
});

test("kv.set resolves true; kv.get parses the JSON entry (needs application/json)", async () => {
  assert.equal(await consul.kv.set(R + "a", "hello"), true);
  const [res, entry] = await consul.kv.get({ key: R + "a", ...withRes() });
  assert.match(res.headers["content-type"], /^application\/json/);
  assert.ok(entry, "kv.get returned nothing: body not parsed as JSON?");
  assert.equal(entry.Key, R + "a");
  assert.equal(entry.Value, "hello");
  assert.equal(entry.Flags, 0);
  assert.equal(entry.LockIndex, 0);
  assert.ok(entry.CreateIndex > 0);
  assert.equal(entry.ModifyIndex, entry.CreateIndex);
  assert.ok(positiveIndex(res) >= BigInt(entry.ModifyIndex));
});

test("kv.get raw resolves the bare value as a Buffer", async () => {
  await consul.kv.set(R + "raw", "raw bytes");
  const v = await consul.kv.get({ key: R + "raw", raw: true });
  assert.ok(Buffer.isBuffer(v), `raw get gave ${typeof v}`);
  assert.equal(v.toString(), "raw bytes");
});

test("an empty value is null; binary values round-trip via base64", async () => {
  assert.equal(await consul.kv.set(R + "empty", ""), true);
  assert.equal((await consul.kv.get(R + "empty")).Value, null);
  const blob = Buffer.from([...Array(256).keys()]);
  assert.equal(await consul.kv.set(R + "bin", blob), true);
  const e = await consul.kv.get({ key: R + "bin", buffer: true });
  assert.ok(Buffer.isBuffer(e.Value));
  assert.ok(e.Value.equals(blob), "binary value changed");
});

test("flags are stored and returned", async () => {
  assert.equal(await consul.kv.set(R + "flags", "x", { flags: 7 }), true);
  assert.equal((await consul.kv.get(R + "flags")).Flags, 7);
});

test("cas: 0 creates only; ModifyIndex writes; a stale index does not", async () => {
  // node-consul resolves a `false` body as undefined, so look at the body
  // itself through includeResponse.
  const put = async (value, cas) => (await consul.kv.set({ key: R + "cas", value, cas, ...withRes() }))[1];
  assert.equal(await put("v1", 0), true);
  assert.equal(await put("v0", 0), false);
  const mod = (await consul.kv.get(R + "cas")).ModifyIndex;
  assert.equal(await put("bad", mod + 1000), false);
  assert.equal((await consul.kv.get(R + "cas")).Value, "v1");
  assert.equal(await put("v2", mod), true);
  const e = await consul.kv.get(R + "cas");
  assert.equal(e.Value, "v2");
  assert.ok(e.ModifyIndex > mod);
});

test("kv.keys lists keys; separator rolls up folders", async () => {
  for (const k of [R + "dir/b", R + "dir/a", R + "dir/sub/x", R + "dirt"]) {
    await consul.kv.set(k, k);
  }
  assert.deepEqual(await consul.kv.keys(R + "dir/"), [R + "dir/a", R + "dir/b", R + "dir/sub/x"]);
  assert.deepEqual(await consul.kv.keys({ key: R + "dir/", separator: "/" }), [
    R + "dir/a",
    R + "dir/b",
    R + "dir/sub/",
  ]);
});

test("kv.get recurse returns every entry under the prefix", async () => {
  for (const k of [R + "rec/2", R + "rec/1", R + "rec/deep/3", R + "recx"]) {
    await consul.kv.set(k, "val-" + k);
  }
  const items = await consul.kv.get({ key: R + "rec/", recurse: true });
  assert.deepEqual(
    items.map((i) => [i.Key, i.Value]),
    ["rec/1", "rec/2", "rec/deep/3"].map((k) => [R + k, "val-" + R + k]),
  );
});

test("keys arrive percent-encoded (a%2Fb, spaces, UTF-8) and are decoded", async () => {
  for (const k of [R + "enc/a b", R + "enc/ünï", R + "enc/q?x=1&y#z", R + "enc/100%"]) {
    assert.equal(await consul.kv.set(k, k), true, `set ${k}`);
    const e = await consul.kv.get(k);
    assert.ok(e, `get ${k} returned nothing`);
    assert.equal(e.Key, k);
    assert.equal(e.Value, k);
  }
  assert.deepEqual(await consul.kv.keys(R + "enc/"), [
    R + "enc/100%",
    R + "enc/a b",
    R + "enc/q?x=1&y#z",
    R + "enc/ünï",
  ]);
});

test("kv.del resolves true; cas delete; recurse delete", async () => {
  await consul.kv.set(R + "del", "x");
  assert.equal(await consul.kv.del(R + "del"), true);
  assert.equal(await consul.kv.get(R + "del"), undefined);

  await consul.kv.set(R + "delcas", "x");
  const mod = (await consul.kv.get(R + "delcas")).ModifyIndex;
  const [, delBody] = await consul.kv.del({ key: R + "delcas", cas: mod + 1000, ...withRes() });
  assert.equal(delBody, false);
  assert.ok(await consul.kv.get(R + "delcas"));
  assert.equal(await consul.kv.del({ key: R + "delcas", cas: mod }), true);
  assert.equal(await consul.kv.get(R + "delcas"), undefined);

  for (const k of [R + "rm/a", R + "rm/b/c", R + "rmx"]) await consul.kv.set(k, "x");
  assert.equal(await consul.kv.del({ key: R + "rm/", recurse: true }), true);
  assert.equal(await consul.kv.get({ key: R + "rm/", recurse: true }), undefined);
  assert.equal((await consul.kv.get(R + "rmx")).Value, "x");
});

test("a bad parameter is a 400 whose text/plain body becomes the error message", async () => {
  await assert.rejects(consul.kv.get({ key: R + "a", index: "notanumber" }), (err) => {
    assert.equal(err.response.statusCode, 400);
    assert.match(err.response.headers["content-type"], /^text\/plain/);
    // papi uses a short text/plain body as the message; otherwise "bad request".
    assert.doesNotMatch(err.message, /: bad request$/);
    return true;
  });
});

test("wrong method is 405", async () => {
  await assert.rejects(consul._post({ name: "status.leader", path: "/status/leader" }), (err) => {
    assert.equal(err.response.statusCode, 405);
    return true;
  });
});

// ------------------------------------------------------------------ watch

test("watch(kv.get) reports the current value, then each change", async () => {
  await consul.kv.set(R + "watch", "v1");
  const { w, changesAtLeast } = startWatch(R + "watch", "30s");
  try {
    const first = await changesAtLeast(1, 10000);
    assert.equal(first[0].data.Value, "v1");
    assert.ok(first[0].index > 0n);
    await consul.kv.set(R + "watch", "v2");
    const second = await changesAtLeast(2, 10000);
    assert.equal(second[1].data.Value, "v2");
    assert.ok(second[1].index > second[0].index, "index did not grow");
    await consul.kv.set(R + "watch", "v3");
    const third = await changesAtLeast(3, 10000);
    assert.equal(third[2].data.Value, "v3");
    assert.ok(third[2].index > third[1].index, "index did not grow");
  } finally {
    w.end();
  }
});

test("watch on a missing key sees creation and deletion", async () => {
  const { w, changesAtLeast } = startWatch(R + "watch-new", "30s");
  try {
    const first = await changesAtLeast(1, 10000);
    assert.equal(first[0].data, undefined);
    await consul.kv.set(R + "watch-new", "born");
    const second = await changesAtLeast(2, 10000);
    assert.equal(second[1].data.Value, "born");
    await consul.kv.del(R + "watch-new");
    const third = await changesAtLeast(3, 10000);
    assert.equal(third[2].data, undefined);
    assert.ok(third[2].index > second[1].index, "index did not grow on delete");
  } finally {
    w.end();
  }
});

test("a quiet watch keeps running across wait expiries without errors", async () => {
  await consul.kv.set(R + "quiet", "q");
  // wait=1s: node-consul's own time-out is 1.5 s, so an answer that comes
  // late or without X-Consul-Index would surface as an error here.
  const { w, changes, errors } = startWatch(R + "quiet", "1s");
  try {
    const t0 = Date.now();
    await new Promise((resolve) => {
      const poll = setInterval(() => {
        if (errors.length || Date.now() - t0 > 3500) {
          clearInterval(poll);
          resolve();
        }
      }, 50);
    });
    assert.deepEqual(errors, [], `watch errors: ${errors.map((e) => e.message).join("; ")}`);
    assert.equal(changes.length, 1, "a quiet key must report only the first value");
    assert.ok(w.updateTime() >= t0 + 900, "no blocking answer came back after the first wait");
  } finally {
    w.end();
  }
});

// ---- catalog, health and agent services (issue 5) -------------------------

const S = `${Date.now() % 1e9}`;

async function until(fn, what, timeoutMs = 10000) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    assert.ok(Date.now() - t0 < timeoutMs, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("agent.service.register with a TTL check; check.pass; health.service passing", async () => {
  const name = `node-web-${S}`;
  await consul.agent.service.register({ name, id: `${name}-1`, port: 8080, tags: ["v1"], check: { ttl: "30s" } });
  const svcs = await consul.agent.service.list();
  assert.equal(svcs[`${name}-1`].Service, name);
  assert.equal(svcs[`${name}-1`].Port, 8080);
  const checks = await consul.agent.check.list();
  assert.equal(checks[`service:${name}-1`].Status, "critical");
  await consul.agent.check.pass({ id: `service:${name}-1`, note: "fine" });
  const nodes = await until(async () => {
    const r = await consul.health.service({ service: name, passing: true });
    return r.length === 1 ? r : null;
  }, "a passing instance");
  assert.equal(nodes[0].Service.ID, `${name}-1`);
  assert.equal(nodes[0].Node.Node, NODE);
  assert.equal(nodes[0].Checks[0].Output, "fine");
  await consul.agent.service.deregister(`${name}-1`);
  await until(async () => (await consul.health.service(name)).length === 0, "deregistration");
});

test("catalog.register, catalog.service.nodes, catalog.node.services, deregister", async () => {
  const node = `node-ext-${S}`;
  await consul.catalog.register({
    node,
    address: "10.6.0.1",
    service: { service: `node-db-${S}`, id: "db1", port: 5432, tags: ["primary"] },
  });
  const nodes = await consul.catalog.service.nodes(`node-db-${S}`);
  assert.equal(nodes.length, 1);
  assert.equal(nodes[0].ServiceID, "db1");
  assert.equal(nodes[0].ServicePort, 5432);
  assert.equal(nodes[0].Address, "10.6.0.1");
  const list = await consul.catalog.service.list();
  assert.deepEqual(list[`node-db-${S}`], ["primary"]);
  const ns = await consul.catalog.node.services(node);
  assert.equal(ns.Services.db1.Port, 5432);
  assert.deepEqual(await consul.catalog.datacenters(), ["dc1"]);
  await consul.catalog.deregister({ node });
  assert.equal((await consul.catalog.service.nodes(`node-db-${S}`)).length, 0);
});
