"""Writes the nginx configurations bench/run.sh runs: the upstream of its headline rows — fixed
OpenAI-shaped answers served from memory by one nginx worker (Debian's nginx, and its echo
module for the delayed answer) — and nginx as a reverse proxy in front of it (the physical
floor of a proxy), each its own process so that each is pinned to its own core.

Usage: python3 bench/nginx_upstream.py upstream WORK_DIR JSON_PORT SSE_PORT SLOW_PORT > upstream.conf
       python3 bench/nginx_upstream.py proxy WORK_DIR PROXY_PORT JSON_PORT PROXY_SLOW_PORT SLOW_PORT > proxy.conf

- JSON_PORT: POST /v1/chat/completions → a chat.completion (usage 12 + 7 tokens); GET /v1/models.
- SSE_PORT: POST /v1/chat/completions → always a stream: five content chunks, the stop chunk,
  the usage chunk, [DONE] (nginx cannot read "stream": true from a body).
- SLOW_PORT: the JSON answer 2 ms after the request (echo_sleep).
- PROXY_PORT, PROXY_SLOW_PORT: nginx proxying to JSON_PORT and SLOW_PORT over kept-alive
  connections.
"""

import json
import sys

mode, work = sys.argv[1:3]

COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the benchmark upstream."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
}, separators=(",", ":"))


def chunk(delta, finish=None, usage=None):
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench",
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        body["usage"] = usage
    return "data: " + json.dumps(body, separators=(",", ":")) + "\n\n"


STREAM = "".join(chunk({"content": word}) for word in ["Hello", " from", " the", " benchmark", " upstream."])
STREAM += chunk({}, finish="stop") + chunk({}, usage={"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19})
STREAM += "data: [DONE]\n\n"
MODELS = json.dumps({"object": "list", "data": [{"id": "bench", "object": "model", "owned_by": "bench"}]})


def quoted(text):
    """An nginx string: single-quoted, with its quotes, backslashes and newlines escaped."""
    assert "$" not in text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


HEAD = f"""load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
worker_processes 1;
pid {work}/nginx-{mode}.pid;
error_log {work}/nginx-{mode}-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-tmp/{mode}-body;
    proxy_temp_path {work}/nginx-tmp/{mode}-proxy;
    fastcgi_temp_path {work}/nginx-tmp/{mode}-fastcgi;
    uwsgi_temp_path {work}/nginx-tmp/{mode}-uwsgi;
    scgi_temp_path {work}/nginx-tmp/{mode}-scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_buffer_size 64k;"""

if mode == "upstream":
    json_port, sse_port, slow_port = sys.argv[3:6]
    print(f"""{HEAD}
    server {{
        listen 127.0.0.1:{json_port};
        location = /v1/chat/completions {{ default_type application/json; return 200 {quoted(COMPLETION)}; }}
        location = /v1/models {{ default_type application/json; return 200 {quoted(MODELS)}; }}
    }}
    server {{
        listen 127.0.0.1:{sse_port};
        location = /v1/chat/completions {{ default_type text/event-stream; return 200 {quoted(STREAM)}; }}
        location = /v1/models {{ default_type application/json; return 200 {quoted(MODELS)}; }}
    }}
    server {{
        listen 127.0.0.1:{slow_port};
        location = /v1/chat/completions {{
            default_type application/json;
            echo_read_request_body;
            echo_sleep 0.002;
            echo -n {quoted(COMPLETION)};
        }}
        location = /v1/models {{ default_type application/json; return 200 {quoted(MODELS)}; }}
    }}
}}""")
else:
    proxy_port, json_port, proxy_slow_port, slow_port = sys.argv[3:7]
    print(f"""{HEAD}
    upstream answers {{ server 127.0.0.1:{json_port}; keepalive 128; }}
    upstream slow_answers {{ server 127.0.0.1:{slow_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{proxy_port};
        location / {{ proxy_pass http://answers; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
    server {{
        listen 127.0.0.1:{proxy_slow_port};
        location / {{ proxy_pass http://slow_answers; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
}}""")
