-- wrk script for bench/kv: one request shape per target and operation.
--
-- Environment (set by bench/kv):
--   BENCH_TARGET  cairn | etcd   (the ceiling server gets cairn's requests)
--   BENCH_OP      put | get
--   BENCH_KEYS    number of pre-populated keys for get (g000000000000000 ...)
--
-- put: a random 16-byte key (URL-safe alphabet) with a 128-byte value.
--      cairn: PUT /v1/kv/<key>, body = value
--      etcd:  POST /v3/kv/put {"key": b64(key), "value": b64(value)}
-- get: a uniformly random pre-populated key.
--      cairn: GET /v1/kv/<key>
--      etcd:  POST /v3/kv/range {"key": b64(key)}

local target = os.getenv("BENCH_TARGET") or "cairn"
local op = os.getenv("BENCH_OP") or "put"
local nkeys = tonumber(os.getenv("BENCH_KEYS") or "1000")

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

-- The pre-populated keys, 16 bytes each; bench/kv writes the same names.
local function get_key(i)
  return string.format("g%015d", i)
end

-- 128 bytes.
local value = string.rep("0123456789abcdef", 8)
local value_b64 = b64(value)

local json_headers = { ["Content-Type"] = "application/json" }
local get_requests = nil

local nthreads = 0
function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
  if op == "get" then
    -- Pre-format every request once, so the load generator spends its
    -- CPU on I/O rather than on string building.
    get_requests = {}
    for i = 0, nkeys - 1 do
      if target == "etcd" then
        get_requests[i + 1] = wrk.format("POST", "/v3/kv/range", json_headers,
          '{"key":"' .. b64(get_key(i)) .. '"}')
      else
        get_requests[i + 1] = wrk.format("GET", "/v1/kv/" .. get_key(i))
      end
    end
  end
end

function request()
  if op == "get" then
    return get_requests[math.random(1, nkeys)]
  end
  local key = random_key()
  if target == "etcd" then
    return wrk.format("POST", "/v3/kv/put", json_headers,
      '{"key":"' .. b64(key) .. '","value":"' .. value_b64 .. '"}')
  end
  return wrk.format("PUT", "/v1/kv/" .. key, nil, value)
end
