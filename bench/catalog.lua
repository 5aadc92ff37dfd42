-- wrk script for bench/catalog: health-service queries with ?passing.
--
-- Environment (set by bench/catalog):
--   BENCH_SERVICES  number of registered services (svc-0 ... svc-N-1)
--
-- Each request asks GET /v1/health/service/svc-<uniformly random>?passing.

local nsvc = tonumber(os.getenv("BENCH_SERVICES") or "1000")

request = function()
  return wrk.format("GET", "/v1/health/service/svc-" .. math.random(0, nsvc - 1) .. "?passing")
end
