-- wrk script of `npm run bench` (scripts/bench.ts): POST /orders/checkout/<id>.
-- Environment:
--   BENCH_MODE        course (default): random ids of 0..BENCH_ORDERS-1, with repeats,
--                     like the course's locust file;
--                     fresh: each id of 0..BENCH_ORDERS-1 once, in a shuffled order;
--                     list: each id of the file BENCH_ORDER_FILE (one a line) once, shuffled.
--   BENCH_ORDERS      how many ids (course, fresh).
--   BENCH_ORDER_FILE  the ids (list).
--   BENCH_SEED        seed of the shuffles and random picks (each thread adds its number).
-- In fresh and list modes, thread k of T walks the ids i with i % T == k. Once a
-- thread has sent its last id, its connections send nothing more, and it stops as
-- soon as its last checkout is answered: no answer is lost, no id repeated.
-- done() prints one line "BENCH_RESULT {json}": status counts (from response()),
-- socket errors, latency percentiles (microseconds, every answer), and the window
-- from the first request sent to the last answer (monotonic clock, microseconds).
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]]
local clockMonotonic = 1
local timespec = ffi.new("bench_timespec")
local function nowUs()
  ffi.C.clock_gettime(clockMonotonic, timespec)
  return tonumber(timespec.tv_sec) * 1000000 + tonumber(timespec.tv_nsec) / 1000
end

local mode = os.getenv("BENCH_MODE") or "course"
local orderCount = tonumber(os.getenv("BENCH_ORDERS") or "100000")
local seed = tonumber(os.getenv("BENCH_SEED") or "1")

-- Main state: number the threads and keep them for done().
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("threadIndex", #threads - 1)
end

-- Thread state (globals, read back by done() through thread:get).
threadIndex = 0
threadCount = 1
startedUs = -1
endedUs = -1
statusCounts = {}
sentLast = false
local ids = {}
local cursor = 1
local inFlight = 0
-- wrk calls thread 0's request() once before the run, to check what it returns
-- (wrk.c, script_verify_request): that call must not use up an id.
local verified = false

local function shuffle(list)
  for i = #list, 2, -1 do
    local j = math.random(1, i)
    list[i], list[j] = list[j], list[i]
  end
end

local function readLines(path)
  local lines = {}
  local file = assert(io.open(path, "r"), "cannot open BENCH_ORDER_FILE " .. tostring(path))
  for line in file:lines() do
    if line ~= "" then table.insert(lines, line) end
  end
  file:close()
  return lines
end

function init(args)
  threadCount = tonumber(os.getenv("BENCH_THREADS") or "1")
  math.randomseed(seed * 1000 + threadIndex)
  if mode == "fresh" then
    for i = threadIndex, orderCount - 1, threadCount do table.insert(ids, tostring(i)) end
    shuffle(ids)
  elseif mode == "list" then
    local all = readLines(os.getenv("BENCH_ORDER_FILE"))
    for i = threadIndex + 1, #all, threadCount do table.insert(ids, all[i]) end
    shuffle(ids)
  elseif mode ~= "course" then
    error("BENCH_MODE must be course, fresh or list, got " .. mode)
  end
  if mode ~= "course" and #ids == 0 then sentLast = true end
end

function request()
  if threadIndex == 0 and not verified then
    verified = true
    return wrk.format("POST", "/orders/checkout/0")
  end
  if startedUs < 0 then startedUs = nowUs() end
  local id
  if mode == "course" then
    id = tostring(math.random(0, orderCount - 1))
  else
    if cursor > #ids then
      -- Nothing left: send nothing; the thread stops at its last answer.
      return ""
    end
    id = ids[cursor]
    cursor = cursor + 1
    if cursor > #ids then sentLast = true end
  end
  inFlight = inFlight + 1
  return wrk.format("POST", "/orders/checkout/" .. id)
end

function response(status, headers, body)
  endedUs = nowUs()
  inFlight = inFlight - 1
  statusCounts[status] = (statusCounts[status] or 0) + 1
  if sentLast and inFlight <= 0 then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local counts = {}
  local firstUs, lastUs = nil, nil
  local allSent = true
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statusCounts")) do
      counts[status] = (counts[status] or 0) + count
    end
    local s, e = thread:get("startedUs"), thread:get("endedUs")
    if s >= 0 and (firstUs == nil or s < firstUs) then firstUs = s end
    if e >= 0 and (lastUs == nil or e > lastUs) then lastUs = e end
    if not thread:get("sentLast") then allSent = false end
  end
  local statusParts = {}
  for status, count in pairs(counts) do
    table.insert(statusParts, string.format('"%d":%d', status, count))
  end
  local percentiles = {}
  for _, p in ipairs({ 50, 90, 99 }) do
    table.insert(percentiles, string.format('"p%d":%d', p, latency:percentile(p)))
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"statusCounts":{%s},"latencyUs":{%s,"max":%d,"mean":%.1f},' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
      '"requests":%d,"durationUs":%d,"windowUs":%d,"allSent":%s}\n',
    table.concat(statusParts, ","), table.concat(percentiles, ","), latency.max, latency.mean,
    errors.connect, errors.read, errors.write, errors.timeout,
    summary.requests, summary.duration, (firstUs and lastUs) and (lastUs - firstUs) or 0,
    (mode ~= "course" and allSent) and "true" or "false"))
end
