-- wrk script: KafkaSource-shaped telemetry, rising counts, spread over queues and jobs.
-- TARGETS is "queue_id/job_id,queue_id/job_id,..." from the environment.
local targets = {}
for pair in string.gmatch(os.getenv("TARGETS") or "q/j", "[^,]+") do
  local q, j = string.match(pair, "([^/]+)/(.+)")
  table.insert(targets, {q, j})
end
local n = 0
request = function()
  n = n + 1
  local t = targets[(n % #targets) + 1]
  local body = string.format(
    '{"type":"telemetry","queue_id":"%s","job_id":"%s","status":"loading","records_written":%d}',
    t[1], t[2], n)
  local headers = {
    ["ce-specversion"] = "1.0", ["ce-id"] = "partition:0/offset:" .. n,
    ["ce-source"] = "/apis/v1/namespaces/bench/kafkasources/queue-control#queue-control",
    ["ce-type"] = "dev.knative.kafka.event", ["ce-subject"] = "partition:0#" .. n,
    ["content-type"] = "application/json"}
  return wrk.format("POST", "/", headers, body)
end
