-- bench/serve_load.lua — wrk script for bench/serve_load.sh: POST /v1/completions
-- with prompts that rotate per request (greedy, SERVE_MAX_TOKENS tokens), then
-- one "key value" line per number the shell script tabulates.
local prompts = {
    "Once upon a time", "Lily and Ben", "The cat sat on the", "One day, a little boy",
    "Tom was sad because", "She saw a big", "The sun was", "Mom said",
}
local max_tokens = tonumber(os.getenv("SERVE_MAX_TOKENS") or "16")
local n = 0

request = function()
    n = n + 1
    local body = string.format('{"prompt": "%s", "max_tokens": %d, "temperature": 0}',
                               prompts[(n % #prompts) + 1], max_tokens)
    return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end

done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("requests %d\n", summary.requests))
    io.write(string.format("rps %.2f\n", summary.requests / (summary.duration / 1e6)))
    io.write(string.format("p50_ms %.3f\n", latency:percentile(50) / 1000))
    io.write(string.format("p99_ms %.3f\n", latency:percentile(99) / 1000))
    io.write(string.format("non2xx %d\n", e.status))
    io.write(string.format("errors %d\n", e.connect + e.read + e.write + e.timeout))
end
