"""A local HTTP server with byte ranges and an ETag, as object stores serve files: GDAL's /vsicurl/ needs ranges."""

import hashlib
import http.server
import re
import threading
from contextlib import contextmanager
from pathlib import Path


def _handler(directory: Path):
    class RangeHandler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _file(self) -> Path | None:
            path = directory / self.path.split("?", 1)[0].lstrip("/")
            return path if path.is_file() and path.parent == directory else None

        def _headers(self, path: Path, status: int, length: int, extra: dict) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{hashlib.sha256(path.read_bytes()).hexdigest()[:32]}"')
            self.send_header("Last-Modified", self.date_time_string(int(path.stat().st_mtime)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()

        def _not_found(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_HEAD(self):
            path = self._file()
            if path is None:
                self._not_found()
                return
            self._headers(path, 200, path.stat().st_size, {})

        def do_GET(self):
            path = self._file()
            if path is None:
                self._not_found()
                return
            data = path.read_bytes()
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if not match:
                self._headers(path, 200, len(data), {})
                self.wfile.write(data)
                return
            start = int(match[1])
            end = min(int(match[2]) if match[2] else len(data) - 1, len(data) - 1)
            self._headers(path, 206, end - start + 1, {"Content-Range": f"bytes {start}-{end}/{len(data)}"})
            self.wfile.write(data[start : end + 1])

    return RangeHandler


@contextmanager
def serve(directory: Path):
    """Yields the base URL (http://127.0.0.1:<port>) serving the files of `directory`."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(directory))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
