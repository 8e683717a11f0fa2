"""zipstream-ng serving the bench's sets as streamed zips (stored, sized: exact Content-Length).

GET /zip/<set> -> ZipStream(sized=True) of the set's files, written like zipstream-ng's own
`zipserver` (zipstream/server.py) does: Content-Length from len(zs), then wfile.writelines(zs).
Env: BENCH_ROOT (folder), BENCH_SETS (JSON: set name -> keys relative to the folder), PORT.
Run with Debian's /usr/bin/python3 (python3-zipstream-ng).
"""
import json
import os
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from zipstream import ZipStream

ROOT = os.environ["BENCH_ROOT"]
with open(os.environ["BENCH_SETS"], encoding="utf-8") as f:
    SETS = json.load(f)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        keys = SETS.get(self.path.removeprefix("/zip/"))
        if keys is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        zs = ZipStream(sized=True)
        for key in keys:
            zs.add_path(os.path.join(ROOT, key), arcname=key, recurse=False)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(zs)))
        self.send_header("Last-Modified", zs.last_modified)
        self.end_headers()
        try:
            self.wfile.writelines(zs)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format, *args):  # noqa: A002 - quiet, like the other servers
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


Server(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
