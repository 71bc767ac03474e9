-- wrk script for scripts/load.sh: an MCP `tools/call` of `whoami` on site-a, in the session named by $SID. The
-- script's `-H` adds the access token (sent to the bare server too, so that both receive the same bytes).
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{"cloudId":"site-a"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
wrk.headers["Mcp-Session-Id"] = os.getenv("SID")
