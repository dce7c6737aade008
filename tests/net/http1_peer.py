#!/usr/bin/env python3
"""A small HTTP/1.1 (keep-alive) peer for src/net's client tests.

Usage: http1_peer.py PORT_FILE
Binds 127.0.0.1 on a free port, writes the port number to PORT_FILE (atomically) and serves
until killed. Every method is answered the same way, steered by request headers:
  x-reply-status: N         answer with status N (default 200)
  x-reply-delay-ms: N       wait N ms before answering
  x-reply-header: Name: v   add a response header (may repeat)
The body is "<METHOD> <path>\\n" followed by the request body; x-echo-method and
x-connection-count (connections accepted so far) are always set.
GET /hang reads the request and never answers (the connection stays open).
"""
import http.server
import os
import sys
import threading
import time

_lock = threading.Lock()
_connections = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global _connections
        super().setup()
        with _lock:
            _connections += 1

    def log_message(self, fmt, *args):  # keep the test output quiet
        pass

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/hang":
            while True:
                time.sleep(3600)
        delay = int(self.headers.get("x-reply-delay-ms") or 0)
        if delay:
            time.sleep(delay / 1000.0)
        status = int(self.headers.get("x-reply-status") or 200)
        payload = ("%s %s\n" % (self.command, self.path)).encode() + body
        self.send_response(status)
        for extra in self.headers.get_all("x-reply-header") or []:
            name, _, value = extra.partition(":")
            self.send_header(name.strip(), value.strip())
        self.send_header("X-Echo-Method", self.command)
        with _lock:
            self.send_header("X-Connection-Count", str(_connections))
        self.send_header("Content-Length", str(len(payload) if self.command != "HEAD" else 0))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_file = sys.argv[1]
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
