-- wrk script: a mixed workload. Per request, at random: 80% reads split evenly over the JWKS
-- (GET), userinfo (GET with a Bearer token) and introspection (POST), 20% client_credentials
-- grants (POST). Paths, bodies and credentials come from the environment, so the same script
-- drives idp and the peer; wrk counts the answers that are not 2xx/3xx.
--   BENCH_JWKS_PATH        e.g. /jwks.json
--   BENCH_USERINFO_PATH    e.g. /userinfo
--   BENCH_BEARER           an access token that userinfo accepts
--   BENCH_INTROSPECT_PATH  e.g. /introspect
--   BENCH_INTROSPECT_FORM  e.g. token=eyJ...
--   BENCH_INTROSPECT_BASIC base64 of the resource server's client_id:client_secret
--   BENCH_TOKEN_PATH       e.g. /token
--   BENCH_TOKEN_FORM       e.g. grant_type=client_credentials
--   BENCH_TOKEN_BASIC      base64 of the machine client's client_id:client_secret
local counter = 1

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
end

local function form(basic)
    return {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["Authorization"] = "Basic " .. basic,
    }
end

function init(args)
    math.randomseed(os.time() * 1000 + id)
    local env = os.getenv
    reads = {
        wrk.format("GET", env("BENCH_JWKS_PATH"), {}),
        wrk.format("GET", env("BENCH_USERINFO_PATH"),
            { ["Authorization"] = "Bearer " .. env("BENCH_BEARER") }),
        wrk.format("POST", env("BENCH_INTROSPECT_PATH"), form(env("BENCH_INTROSPECT_BASIC")),
            env("BENCH_INTROSPECT_FORM")),
    }
    grant = wrk.format("POST", env("BENCH_TOKEN_PATH"), form(env("BENCH_TOKEN_BASIC")),
        env("BENCH_TOKEN_FORM"))
end

function request()
    local draw = math.random(10)  -- 1..10
    if draw <= 2 then return grant end
    return reads[math.random(3)]
end
