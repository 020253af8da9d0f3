"""An S3-compatible server on 127.0.0.1 for the object-store tests: moto's S3, served one request at a time.

moto answers PUTs with `If-Match` / `If-None-Match: *` as S3 does (412 Precondition Failed when the condition does
not hold), but checks the condition and stores the object in two steps without a lock: on moto's threaded server two
PUTs at once could both pass the check. Served one request at a time, each PUT is checked and applied whole, as S3
applies each request to an object, while requests from several client processes still interleave between each
other's reads and writes.
"""

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


class _OneConnectionPerRequest(MotoRequestHandler):
    protocol_version = "HTTP/1.0"  # no keep-alive: one client's idle connection never blocks the others


@dataclass
class S3Server:
    endpoint: str
    # (method, bucket/key, status) of every answer, e.g. ("PUT", "b/out/catalog.json", 412) for a refused commit.
    answers: Counter = field(default_factory=Counter)

    def refused_puts(self, path: str) -> int:
        """PUTs of `path` (bucket/key) refused because their condition did not hold."""
        return self.answers[("PUT", path, 412)]


@contextmanager
def s3_server() -> Iterator[S3Server]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = DomainDispatcherApplication(create_backend_app)
    answers = Counter()

    def app(environ, start_response):
        def record(status, headers, *args):
            path = environ.get("PATH_INFO", "").lstrip("/")  # path-style addressing: an IP endpoint
            answers[(environ["REQUEST_METHOD"], path, int(status.split()[0]))] += 1
            return start_response(status, headers, *args)

        return moto(environ, record)

    server = make_server("127.0.0.1", 0, app, threaded=False, request_handler=_OneConnectionPerRequest)
    thread = threading.Thread(target=server.serve_forever, name="s3-server", daemon=True)
    thread.start()
    try:
        yield S3Server(f"http://127.0.0.1:{server.server_address[1]}", answers)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
