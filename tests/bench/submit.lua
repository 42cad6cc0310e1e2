-- wrk script: POST urlencoded answers to a form, each request with its own `_key`.
-- Usage: wrk ... -s submit.lua http://host:port/f/consumer-survey -- <key prefix> [flow]
-- With `flow`, every other request is the resident's GET of the form page first, asking for
-- gzip as phones do (the key is made here: the server takes any well-formed key, as it takes
-- the one it put in the page, so the work is the same).
-- Prints one line `BENCH {json}` with the counts of 303s, 200s and other statuses.

-- Valid answers for forms/consumer-survey.toml, as a phone would post them (%-encoded UTF-8).
local answers = {
  "fangxin_aware=heard&know_12315=used&how_known_12315=tv&how_known_12315=online&rating_12315=4"
    .. "&concerns=food&concerns=online&food_worry=expired&food_worry=additives"
    .. "&online_trouble=%E7%BD%91%E8%B4%AD%E7%9A%84%E5%85%85%E7%94%B5%E5%AE%9D%E5%8F%91%E7%83%AD"
    .. "&monthly_spend=1500&had_problem=yes&what_did=hotline&email=",
  "fangxin_aware=never&know_12315=unknown&concerns=elevator&concerns=fuel&monthly_spend=800"
    .. "&had_problem=no&email=",
  "fangxin_aware=know_well&know_12315=known&how_known_12315=event&concerns=children&concerns=student"
    .. "&concerns=appliance&online_trouble=%E4%B9%A6%E5%8C%85%E6%8B%89%E9%93%BE%E5%AE%B9%E6%98%93%E5%9D%8F"
    .. "&monthly_spend=2600.5&had_problem=yes&what_did=seller&next_time_12315=maybe"
    .. "&email=resident%40example.cn&_consent=yes",
  "fangxin_aware=heard&know_12315=known&how_known_12315=people&how_known_12315=other"
    .. "&how_known_12315_other=%E7%A4%BE%E5%8C%BA%E5%85%AC%E5%91%8A%E6%A0%8F&concerns=food"
    .. "&food_worry=label&had_problem=unsure&email=",
}

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1] or "bench"
  flow = args[2] == "flow"
  counter = 0
  seen_303 = 0
  seen_200 = 0
  seen_other = 0
end

local browser = {["Accept-Encoding"] = "gzip, deflate, br"}

function request()
  counter = counter + 1
  if flow and counter % 2 == 1 then
    return wrk.format("GET", nil, browser)
  end
  local key = string.format("%s-%02d-%010d", prefix, id, counter)
  local body = "_key=" .. key .. "&" .. answers[counter % #answers + 1]
  local headers = {["Content-Type"] = "application/x-www-form-urlencoded", ["Accept-Encoding"] = browser["Accept-Encoding"]}
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  if status == 303 then
    seen_303 = seen_303 + 1
  elseif status == 200 and flow then
    seen_200 = seen_200 + 1
  else
    seen_other = seen_other + 1
  end
end

function done(summary, latency, requests)
  local ok, pages, other = 0, 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("seen_303")
    pages = pages + thread:get("seen_200")
    other = other + thread:get("seen_other")
  end
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "status_303": %d, "status_200": %d, "status_other": %d, "p50_us": %d, "p99_us": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, ok, pages, other, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
