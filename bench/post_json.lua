-- wrk script: POST a JSON body from the environment.
--   BENCH_JSON   e.g. {"redirect_uris":["https://bench.example/callback"]}
wrk.method = "POST"
wrk.body = os.getenv("BENCH_JSON") or "{}"
wrk.headers["Content-Type"] = "application/json"
