-- wrk script: requests /bytes/SIZE?v=i for i = 0 .. COUNT-1 in turn, so
-- that each request is a different cache key (a working set of COUNT
-- objects). Used for the disk-hit measurement in README.md:
--   SIZE=1048576 COUNT=256 wrk -t2 -c64 -d5s -s edge/bench/spread.lua http://HOST:PORT
local counter = 0
local size = os.getenv("SIZE") or "1048576"
local count = tonumber(os.getenv("COUNT") or "256")

request = function()
  counter = counter + 1
  return wrk.format("GET", "/bytes/" .. size .. "?v=" .. (counter % count))
end
