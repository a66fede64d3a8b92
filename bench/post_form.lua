-- wrk script: POST a form body with HTTP Basic client authentication, both from the environment.
--   BENCH_FORM   e.g. grant_type=client_credentials
--   BENCH_BASIC  base64 of client_id:client_secret (optional)
wrk.method = "POST"
wrk.body = os.getenv("BENCH_FORM") or ""
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local basic = os.getenv("BENCH_BASIC")
if basic and basic ~= "" then
    wrk.headers["Authorization"] = "Basic " .. basic
end
