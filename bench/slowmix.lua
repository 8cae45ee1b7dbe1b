-- wrk script for the slow-mix measurement of bench/run.sh:
--
--   wrk -tN -cN -s bench/slowmix.lua http://127.0.0.1:PORT/
--
-- Every request is /slow.php with probability SLOW_PCT/100 (env, default 10)
-- and /hello.php otherwise. wrk's own latency statistics mix both kinds, so
-- this script times each request itself (CLOCK_MONOTONIC through LuaJIT's
-- FFI, from request() to response()) and reports percentiles per kind.
--
-- That pairing is only valid with ONE connection per wrk thread (-t == -c):
-- request() and response() have no connection argument, and with a single
-- connection they strictly alternate. run.sh always passes -t == -c.
--
-- Output (parsed by run.sh), one line each:
--   slowmix fast <count> <p50_ms> <p99_ms> <max_ms>
--   slowmix slow <count> <p50_ms> <p99_ms> <max_ms>

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } slowmix_timespec;
  int clock_gettime(int clk_id, slowmix_timespec *tp);
]]
local ts = ffi.new("slowmix_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local slow_pct = tonumber(os.getenv("SLOW_PCT") or "10")

-- main state: every thread, so done() can collect their samples
local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

-- thread state
fast, slow = {}, {}
local req_fast, req_slow
local started, kind = nil, nil

function init(args)
  math.randomseed(1000003 * id + 7)
  req_fast = wrk.format("GET", "/hello.php")
  req_slow = wrk.format("GET", "/slow.php")
end

function request()
  -- called just before each request is written (also after a reconnect,
  -- which simply restarts the timing)
  if math.random() * 100 < slow_pct then
    kind = slow
    started = now_us()
    return req_slow
  end
  kind = fast
  started = now_us()
  return req_fast
end

function response(status, headers, body)
  if started and status == 200 then
    kind[#kind + 1] = now_us() - started
  end
  started = nil
end

local function report(name, key)
  local all = {}
  for _, t in ipairs(threads) do
    local s = t:get(key)
    for i = 1, #s do all[#all + 1] = s[i] end
  end
  table.sort(all)
  local n = #all
  local function pct(p)
    if n == 0 then return 0 end
    local i = math.ceil(p / 100 * n)
    if i < 1 then i = 1 end
    return all[i] / 1000
  end
  io.write(string.format("slowmix %s %d %.3f %.3f %.3f\n", name, n, pct(50), pct(99), pct(100)))
end

function done(summary, latency, requests)
  report("fast", "fast")
  report("slow", "slow")
end
