-- wrk script: each thread (one connection each: run with -tN -cN) refreshes its own token
-- family in a loop, taking the rotated refresh token from every answer.
--   BENCH_REFRESH_TOKENS  a file with one refresh token per line (at least one per thread)
--   BENCH_REFRESH_OFFSET  lines to skip (a warm-up run uses other families than the measured one)
--   BENCH_BASIC           base64 of client_id:client_secret
local counter = 1

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
end

function init(args)
    local line_number = 0
    local wanted = id + tonumber(os.getenv("BENCH_REFRESH_OFFSET") or "0")
    for line in io.lines(os.getenv("BENCH_REFRESH_TOKENS")) do
        line_number = line_number + 1
        if line_number == wanted then token = line end
    end
    headers = {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC"),
    }
end

function request()
    return wrk.format("POST", nil, headers, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
    local rotated = body:match('"refresh_token":%s*"([^"]+)"')
    if rotated then token = rotated end
end
