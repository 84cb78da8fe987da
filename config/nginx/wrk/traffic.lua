-- Realistic traffic for the demo web cluster, for wrk (-s config/nginx/wrk/traffic.lua).
-- Every request names a client in X-Forwarded-For (the balancer trusts that header from the
-- generator's address only), picks a virtual host and a path from the sites' manifest (static
-- files of varied sizes and a few error paths, weighted), with a browser-like user agent.
--
-- Environment (all optional except WRK_MANIFEST):
--   WRK_MANIFEST   "host path weight" lines, written by scripts/webcluster.sh start
--   WRK_CLIENTS    distinct client addresses, from 198.18.0.0/15 (2000); a few are heavy hitters
--   WRK_DELAY_MS   pause before each request on a connection, ms (0): the rate is about
--                  connections x 1000 / (delay + response time) per second
--   WRK_REQUESTS_PER_THREAD  stop each thread after this many responses (unbounded); with one
--                  connection per thread (-c equal to -t) exactly that many requests are sent
--   WRK_HOST, WRK_PATH  send only this host and path (balancing checks)
--   WRK_SEED       random seed (1)

local function env_number(name, default)
  local value = os.getenv(name)
  if value == nil or value == "" then return default end
  local n = tonumber(value)
  if n == nil then error(name .. " must be a number, got '" .. value .. "'") end
  return n
end

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  table.insert(threads, thread)
end

local host_weights = {
  ["shop.example.com"] = 30, ["img.example.com"] = 30, ["api.example.org"] = 25,
  ["blog.example.com"] = 10, ["video.example.net"] = 5,
}
local agents = {
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
  "curl/8.5.0",
  "Googlebot/2.1 (+http://www.google.com/bot.html)",
}

local sites = {}       -- host -> { paths = {...}, cumulative = {...}, total = n }
local host_list, host_cumulative, host_total = {}, {}, 0
local clients = {}
local quota, delay_ms = nil, 0
count = 0 -- global: done() reads it from each thread
local fixed_host, fixed_path = nil, nil

local function pick(cumulative, total)
  local r = math.random() * total
  for i, c in ipairs(cumulative) do
    if r < c then return i end
  end
  return #cumulative
end

function init(args)
  local seed = env_number("WRK_SEED", 1)
  math.randomseed(seed * 7919 + (id or 0))
  delay_ms = env_number("WRK_DELAY_MS", 0)
  quota = env_number("WRK_REQUESTS_PER_THREAD", nil)
  fixed_host, fixed_path = os.getenv("WRK_HOST"), os.getenv("WRK_PATH")

  local manifest = os.getenv("WRK_MANIFEST")
  if manifest == nil or manifest == "" then error("WRK_MANIFEST is not set (scripts/webcluster.sh env prints it)") end
  local file = io.open(manifest, "r")
  if file == nil then error("cannot open WRK_MANIFEST " .. manifest) end
  for line in file:lines() do
    local host, path, weight = line:match("^(%S+) (%S+) (%d+)$")
    if host then
      local site = sites[host]
      if site == nil then
        site = { paths = {}, cumulative = {}, total = 0 }
        sites[host] = site
      end
      site.total = site.total + tonumber(weight)
      table.insert(site.paths, path)
      table.insert(site.cumulative, site.total)
    end
  end
  file:close()
  for host, weight in pairs(host_weights) do
    if sites[host] then
      host_total = host_total + weight
      table.insert(host_list, host)
      table.insert(host_cumulative, host_total)
    end
  end
  if host_total == 0 then error("no known host in " .. manifest) end

  -- The same address list in every thread (seeded alike), spread over the /24s of
  -- 198.18.0.0/15 so ip_hash (which keys on the first three octets) has many keys.
  local n = env_number("WRK_CLIENTS", 2000)
  for i = 0, n - 1 do
    local x = (i * 2654435761) % 131072
    local third, fourth = math.floor(x / 256) % 256, x % 256
    if fourth == 0 or fourth == 255 then fourth = 1 + i % 250 end
    clients[i + 1] = string.format("198.%d.%d.%d", 18 + math.floor(x / 65536), third, fourth)
  end
end

function delay()
  return delay_ms
end

function request()
  -- Client: skewed towards the first addresses (u^3), so top clients stand out.
  local client = clients[1 + math.floor(#clients * math.random() ^ 3)]
  local host, path = fixed_host, fixed_path
  if host == nil or host == "" then host = host_list[pick(host_cumulative, host_total)] end
  if path == nil or path == "" then
    local site = sites[host]
    path = site.paths[pick(site.cumulative, site.total)]
  end
  local headers = {
    ["Host"] = host,
    ["X-Forwarded-For"] = client,
    ["User-Agent"] = agents[1 + math.floor(math.random() ^ 2 * #agents)],
  }
  if math.random() < 0.3 then headers["Referer"] = "https://" .. host .. "/" end
  return wrk.format("GET", path, headers, nil)
end

function response(status, headers, body)
  count = count + 1
  if quota ~= nil and count >= quota then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("count") or 0)
  end
  io.write(string.format("traffic.lua: %d responses counted, %d requests completed, %d socket errors\n",
    total, summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
