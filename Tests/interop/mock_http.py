"""What the interop tests' mock upstreams share: a threaded HTTP/1.1 server on a free loopback
port, run as a context manager (stopped on exit), and a request handler that reads JSON bodies
and sends JSON answers and chunked bodies."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class MockHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_request(self):
        """The request's headers (names lowercased), its raw body, and the body as JSON ({} when empty)."""
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        return {k.lower(): v for k, v in self.headers.items()}, raw, json.loads(raw or b"{}")

    def send_json(self, status, value, content_type="application/json", extra=None):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for name, header in (extra or {}).items():
            self.send_header(name, header)
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self, content_type):
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def chunk(self, data):
        """One chunk of a chunked body; b"" ends it."""
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of new connections (500 concurrent
    # requests open hundreds at once) overflows it, and the kernel then holds connections the
    # client sees as open for seconds. Real servers listen with hundreds or thousands (uvicorn
    # 2048, nginx 511).
    request_queue_size = 1024
    daemon_threads = True


class MockServer:
    """Serves `handler` on 127.0.0.1 at a free port (`port`, `root_url`) while entered."""

    def serve(self, handler):
        self.server = Server(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.root_url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
