"""A pass-through proxy in front of The Eye for the SDK tests: it forwards every request
as it is, answers with The Eye's answer, except that the answers to the first
--lose-first POSTs are replaced by `503 Retry-After: 1` after The Eye has stored them
(a lost answer: the SDK must retry, and The Eye must store its messages once). It
records each request; `GET /__log` returns the records as JSON.

usage: python3 proxy.py UPSTREAM_URL [--lose-first N]   (prints "listening on PORT")
"""

import base64
import binascii
import http.client
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

upstream = urllib.parse.urlsplit(sys.argv[1])
lose = int(sys.argv[sys.argv.index("--lose-first") + 1]) if "--lose-first" in sys.argv else 0
records = []
lock = threading.Lock()


def basic_user(authorization):
    """The user name of Basic credentials (a Segment write key), or None."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(credentials).decode().split(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return None


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        global lose
        if self.path == "/__log":
            body = json.dumps(records).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        connection.request(self.command, self.path, body=body, headers=headers)
        answer = connection.getresponse()
        content = answer.read()
        status, reply_headers = answer.status, answer.getheaders()
        with lock:
            lost = self.command == "POST" and lose > 0
            if lost:
                lose -= 1
            records.append({
                "method": self.command,
                "path": self.path,
                "encoding": self.headers.get("content-encoding"),
                "key": basic_user(self.headers.get("authorization", "")),
                "upstream": status,
                "answered": 503 if lost else status,
            })
        if lost:
            content = b'{"error":{"code":"lost","message":"the answer was lost on the way"}}'
            reply_headers = [(k, v) for k, v in reply_headers if k.lower().startswith("access-control")]
            reply_headers += [("retry-after", "1"), ("content-type", "application/json")]
            status = 503
        self.send_response(status)
        for key, value in reply_headers:
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("content-length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_OPTIONS = forward


server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
print(f"listening on {server.server_address[1]}", flush=True)
server.serve_forever()
