"""A real S3 and SQS for tests: moto's HTTP server on 127.0.0.1, and a fault-injecting proxy.

Nothing here mocks boto3: docproc talks HTTP to moto's server (in this process,
on a free loopback port, its access log sent to a file). Faults that moto cannot
produce (throttling, access denied, dropped connections, no conditional writes)
come from :class:`FaultProxy`, a small HTTP relay between boto3 and moto that
answers selected requests itself.
"""

from __future__ import annotations

import http.client
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import botocore.config
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class Moto:
    """moto's server, started once per session."""

    def __init__(self, log_file: Path) -> None:
        handler = logging.FileHandler(log_file)
        for name in ("werkzeug", "moto"):
            logger = logging.getLogger(name)
            logger.handlers[:] = [handler]
            logger.propagate = False
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.stop()

    def client(self, service: str = "s3", url: str | None = None) -> Any:
        """A plain boto3 client for arranging a test (not docproc's adapter)."""
        return boto3.client(
            service, endpoint_url=url or self.url, region_name=REGION,
            aws_access_key_id="testing", aws_secret_access_key="testing",  # noqa: S106
            config=botocore.config.Config(s3={"addressing_style": "path"},
                                          retries={"mode": "standard", "max_attempts": 2}),
        )  # fmt: skip

    def bucket(self, client: Any) -> str:
        """A new, empty bucket with a unique name."""
        name = f"t-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=name)
        return name

    @staticmethod
    def seed(bucket: str, objects: dict[str, bytes]) -> None:
        """Put many objects straight into moto's store (arranging only; reads go over HTTP)."""
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key, value in objects.items():
            backend.put_object(bucket, key, value, disable_notification=True)


@dataclass
class Fault:
    """Answer matching requests with ``status`` (an S3 error body), or drop the connection."""

    match: Callable[[str, str, dict[str, str]], bool]  # (method, path, headers) -> bool
    status: int = 503
    code: str = "SlowDown"
    drop: bool = False
    times: int = 10**9


class FaultProxy:
    """An HTTP relay to ``upstream`` that injects :class:`Fault` s and counts requests."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.faults: list[Fault] = []
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="fault-proxy")
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()

    def take(self, method: str, path: str, headers: dict[str, str]) -> Fault | None:
        with self.lock:
            self.seen[method] += 1
            for fault in self.faults:
                if fault.times > 0 and fault.match(method, path, headers):
                    fault.times -= 1
                    return fault
        return None

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Relay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: no lingering threads

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _relay(self) -> None:
            body = self._body()
            headers = dict(self.headers.items())
            fault = proxy.take(self.command, self.path, {k.lower(): v for k, v in headers.items()})
            if fault is not None:
                self._fault(fault)
                return
            upstream = http.client.HTTPConnection(proxy.upstream, timeout=30)
            try:
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                data = response.read()
            finally:
                upstream.close()
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            length = response.getheader("content-length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline().strip():
                    pass
                del self.headers["Transfer-Encoding"]
                data = b"".join(chunks)
                self.headers["Content-Length"] = str(len(data))
                return data
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _fault(self, fault: Fault) -> None:
            if fault.drop:
                self.close_connection = True
                return
            body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{fault.code}</Code>"
                    f"<Message>injected</Message></Error>").encode()  # fmt: skip
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay  # noqa: N815

    return Relay
