-- wrk script for bench/anomaly.py: POST the same JSON body (read once from $BODY_FILE).
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
