-- wrk script for bench/txn: one transaction of BENCH_OPS puts per request.
--
-- Environment (set by bench/txn):
--   BENCH_TARGET  cairn | etcd
--   BENCH_OPS     operations per transaction (default 10)
--   BENCH_POOL    distinct request bodies pre-built per thread (default 512)
--
-- Each operation writes a random 16-byte key (62-letter alphabet) with a
-- 128-byte value:
--   cairn: PUT /v1/txn  [{"KV":{"Verb":"set","Key":k,"Value":b64(v)}} x N]
--   etcd:  POST /v3/kv/txn {"success":[{"requestPut":{"key":b64(k),
--          "value":b64(v)}} x N]}   (no compare: always the success branch)
-- Bodies are built once in init() and cycled, so that wrk spends its CPU on
-- I/O rather than on string building; with 512 bodies x 10 keys the keys
-- repeat, which changes nothing for either store (every put is a write).
-- A rolled-back or refused transaction is not a 2xx (Cairn 409, etcd's
-- gateway 4xx/5xx), so wrk's non-2xx tally counts failures.

local target = os.getenv("BENCH_TARGET") or "cairn"
local nops = tonumber(os.getenv("BENCH_OPS") or "10")
local pool_size = tonumber(os.getenv("BENCH_POOL") or "512")

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1)
      .. (b and b64chars:sub(c3 + 1, c3 + 1) or "=")
      .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

local function random_key()
  local t = {}
  for i = 1, 16 do
    local r = math.random(1, #alphabet)
    t[i] = alphabet:sub(r, r)
  end
  return table.concat(t)
end

local value_b64 = b64(string.rep("0123456789abcdef", 8)) -- 128 bytes
local json_headers = { ["Content-Type"] = "application/json" }
local requests = nil
local next_req = 1

local nthreads = 0
function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
end

local function body()
  local ops = {}
  for i = 1, nops do
    local k = random_key()
    if target == "etcd" then
      ops[i] = '{"requestPut":{"key":"' .. b64(k) .. '","value":"' .. value_b64 .. '"}}'
    else
      ops[i] = '{"KV":{"Verb":"set","Key":"bt/' .. k .. '","Value":"' .. value_b64 .. '"}}'
    end
  end
  if target == "etcd" then
    return '{"success":[' .. table.concat(ops, ",") .. ']}'
  end
  return "[" .. table.concat(ops, ",") .. "]"
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
  requests = {}
  for i = 1, pool_size do
    if target == "etcd" then
      requests[i] = wrk.format("POST", "/v3/kv/txn", json_headers, body())
    else
      requests[i] = wrk.format("PUT", "/v1/txn", json_headers, body())
    end
  end
end

function request()
  local r = requests[next_req]
  next_req = next_req % pool_size + 1
  return r
end
