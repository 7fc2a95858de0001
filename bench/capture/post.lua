-- wrk script: POST recorded OTLP/HTTP protobuf bodies to /v1/traces, cycling through them.
--   wrk -s post.lua URL -- DIR PREFIX COUNT
-- loads DIR/PREFIX-00.pb .. DIR/PREFIX-(COUNT-1).pb. Requests are formatted once in init(), so the
-- per-request Lua cost is one table lookup. wrk counts non-2xx answers as `errors.status`, so
-- acknowledged requests = requests - errors.status. done() prints one machine-readable line.
local requests_ = {}
local n = 0
local i = 0
local delay_ms = 0

function init(args)
  local dir, prefix, count = args[1], args[2], tonumber(args[3])
  -- Optional pacing: RATE requests/s in total over CONNECTIONS connections, so latency can be
  -- measured at a given load instead of at saturation (each connection waits between requests).
  local rate, connections = tonumber(args[4] or ""), tonumber(args[5] or "")
  if rate and connections and rate > 0 then delay_ms = connections * 1000 / rate end
  local headers = { ["Content-Type"] = "application/x-protobuf" }
  for k = 0, count - 1 do
    local path = string.format("%s/%s-%02d.pb", dir, prefix, k)
    local f = assert(io.open(path, "rb"))
    local body = f:read("*a")
    f:close()
    requests_[#requests_ + 1] = wrk.format("POST", "/v1/traces", headers, body)
  end
  n = #requests_
  i = math.random(n) - 1 -- threads start at different bodies
end

function request()
  i = i % n + 1
  return requests_[i]
end
-- No delay() here: wrk times every request with a timer when a script defines one, which would
-- slow the unpaced runs. capture-bench.sh appends `function delay() return delay_ms end` to a
-- copy of this script for the paced latency runs.

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d "
      .. "duration_us=%d bytes_read=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, e.status, e.connect, e.read, e.write, e.timeout, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.max))
end
