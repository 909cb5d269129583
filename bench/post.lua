-- wrk script: distinct, seed-shaped webhooks of all four kinds, in turn, from every connection.
-- Environment: ORG (organization id), SECRET (webhook secret), DELAY_MS (optional pause per request).
local org = os.getenv("ORG")
local secret = os.getenv("SECRET")
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")
local counter = 0
-- Distinct across runs too (RUN), so that no request is a redelivery of an earlier one. Run wrk with -t1.
local prefix = os.getenv("RUN") or tostring(os.time())

local function call(id)
  return "/functions/v1/mightycall-calls-webhook",
    '{"event":"call.completed","call_id":"call_' .. id .. '","phone_number":"+12125551234",' ..
    '"caller_name":"John Doe","caller_phone":"+14155555678","duration":180,"status":"completed",' ..
    '"direction":"inbound","recording_url":"https://mightycall.com/recordings/rec_' .. id .. '.mp3",' ..
    '"timestamp":"2024-01-20T14:30:00Z","org_id":"' .. org .. '"}'
end

local function sms(id)
  return "/functions/v1/mightycall-sms-webhook",
    '{"event":"sms.received","sms_id":"sms_' .. id .. '","phone_number":"+12125551234",' ..
    '"direction":"inbound","sender":"+14155555678","recipient":"+12125551234",' ..
    '"message":"Hi, I have a question about my order","status":"received",' ..
    '"timestamp":"2024-01-20T14:30:00Z","org_id":"' .. org .. '"}'
end

local function recording(id)
  return "/functions/v1/mightycall-recordings-webhook",
    '{"event":"recording.available","recording_id":"rec_' .. id .. '","call_id":"call_' .. id .. '",' ..
    '"phone_number":"+12125551234","url":"https://mightycall.com/recordings/rec_' .. id .. '.mp3",' ..
    '"duration":180,"format":"mp3","size_bytes":2890000,"timestamp":"2024-01-20T14:31:00Z",' ..
    '"org_id":"' .. org .. '"}'
end

local function report(id)
  return "/functions/v1/mightycall-reports-webhook",
    '{"event":"report.daily","report_id":"rep_' .. id .. '","report_type":"daily","date":"2024-01-20",' ..
    '"phone_number":"+12125551234","metrics":[{"metric_type":"calls_total","value":42,"unit":"count"},' ..
    '{"metric_type":"calls_missed","value":2,"unit":"count"},' ..
    '{"metric_type":"avg_call_duration","value":240,"unit":"seconds"}],' ..
    '"timestamp":"2024-01-20T23:59:59Z","org_id":"' .. org .. '"}'
end

local kinds = {call, sms, recording, report}

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. secret

function request()
  counter = counter + 1
  local path, body = kinds[counter % 4 + 1](prefix .. "_" .. counter)
  return wrk.format(nil, path, nil, body)
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end
