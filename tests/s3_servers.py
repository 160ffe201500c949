"""S3 peers for the S3 backend tests: fault-injecting proxies and an IAM-enforcing moto.

Both listen on 127.0.0.1 only and speak real HTTP.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from conftest import BUCKET_REGION, free_port

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "host"}

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class FaultProxy(ThreadingHTTPServer):
    """Forward every request to `upstream`, except the first ones, which get 503.

    `failures_left` is how many requests still get 503; `failed` and `forwarded`
    count what happened.
    """

    daemon_threads = True

    def __init__(self, upstream: str, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.failures_left = failures
        self.failed = 0
        self.forwarded = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def take_failure(self) -> bool:
        with self.lock:
            if self.failures_left > 0:
                self.failures_left -= 1
                self.failed += 1
                return True
            self.forwarded += 1
            return False


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultProxy

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.server.take_failure():
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(SLOW_DOWN)))
            self.end_headers()
            self.wfile.write(SLOW_DOWN)
            return
        host, port = self.server.upstream
        upstream = http.client.HTTPConnection(host, port, timeout=60)
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() not in HOP_BY_HOP
        }
        headers["Host"] = self.headers.get("Host", f"{host}:{port}")
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay


@contextmanager
def fault_proxy(upstream: str, failures: int) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, failures)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


INTERNAL_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)
THROTTLED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)

# The faults the injector applies to one request, instead of forwarding it cleanly:
# respond with 500, 503 or 503 SlowDown; reset the connection before forwarding, or
# after forwarding (the store did the work, the client never hears of it); stall
# without responding; or forward and cut the response body short.
FAULT_KINDS = (
    "500",
    "503",
    "slowdown",
    "reset",
    "reset-after",
    "stall",
    "short-body",
)


class FaultInjector(ThreadingHTTPServer):
    """Forward requests to `upstream`, injecting a fault into some at random.

    Each request gets a fault with probability `rate` (while `enabled`), of a kind
    drawn from `kinds` with `chooser`, a seeded random.Random. Faults given with
    `plan` come first, each to the next request that matches it. `injected` counts the
    faults by kind, `forwarded` the requests passed on cleanly. A stalled request is
    held for `stall` seconds, longer than the client's read timeout, then closed.
    """

    daemon_threads = True
    # Stalled handlers hold their sockets; keep the listen queue roomy.
    request_queue_size = 64

    def __init__(
        self,
        upstream: str,
        chooser,  # noqa: ANN001 - a random.Random
        rate: float,
        kinds: tuple[str, ...] = FAULT_KINDS,
        stall: float = 3.0,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _InjectorHandler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.chooser = chooser
        self.rate = rate
        self.kinds = kinds
        self.stall = stall
        self.enabled = True
        # Faults planned for the next requests of a method, before any random one.
        self.planned: list[tuple[str, str, str]] = []
        self.injected: dict[str, int] = {}
        self.forwarded = 0
        self.lock = threading.Lock()
        self.released = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def faults(self) -> int:
        with self.lock:
            return sum(self.injected.values())

    def plan(self, method: str, kind: str, key: str = "") -> None:
        """Give the fault `kind` to the next `method` request whose path contains
        `key`."""
        with self.lock:
            self.planned.append((method, kind, key))

    def choose(self, method: str, path: str) -> str | None:
        with self.lock:
            for index, (planned_method, kind, key) in enumerate(self.planned):
                if planned_method == method and key in path:
                    del self.planned[index]
                    self.injected[kind] = self.injected.get(kind, 0) + 1
                    return kind
            if not self.enabled or self.chooser.random() >= self.rate:
                self.forwarded += 1
                return None
            kind = self.chooser.choice(self.kinds)
            self.injected[kind] = self.injected.get(kind, 0) + 1
            return kind


class _InjectorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultInjector

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _reset(self) -> None:
        """Close the connection with a TCP reset (SO_LINGER 0)."""
        self.connection.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.close_connection = True
        self.connection.close()

    def _error(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        host, port = self.server.upstream
        upstream = http.client.HTTPConnection(host, port, timeout=60)
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() not in HOP_BY_HOP
        }
        headers["Host"] = self.headers.get("Host", f"{host}:{port}")
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            return answer.status, answer.getheaders(), answer.read()
        finally:
            upstream.close()

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        kind = self.server.choose(self.command, self.path)

        # Faults that never reach the store.
        if kind == "500":
            self._error(500, INTERNAL_ERROR)
            return
        if kind == "503":
            self._error(503, SLOW_DOWN)
            return
        if kind == "slowdown":
            self._error(503, THROTTLED)
            return
        if kind == "reset":
            self._reset()
            return
        if kind == "stall":
            self.server.released.wait(self.server.stall)
            self._reset()
            return

        # Faults after the store has done the work.
        status, headers, payload = self._forward(body)
        if kind == "reset-after":
            self._reset()
            return
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if kind == "short-body" and payload:
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self._reset()
            return
        self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay


@contextmanager
def fault_injector(
    upstream: str,
    chooser,  # noqa: ANN001 - a random.Random
    rate: float,
    kinds: tuple[str, ...] = FAULT_KINDS,
    stall: float = 3.0,
) -> Iterator[FaultInjector]:
    """Run a FaultInjector in front of `upstream` on 127.0.0.1 while in the block."""
    injector = FaultInjector(upstream, chooser, rate, kinds, stall)
    thread = threading.Thread(target=injector.serve_forever, daemon=True)
    thread.start()
    try:
        yield injector
    finally:
        injector.released.set()
        injector.shutdown()
        injector.server_close()


@dataclass
class Keys:
    access_key_id: str
    secret_access_key: str

    def environment(self, endpoint: str) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": BUCKET_REGION,
        }


@dataclass
class IamServer:
    endpoint: str
    bucket: str
    writer: Keys
    pruner: Keys

    def client(self, keys: Keys):  # noqa: ANN201 - a boto3 S3 client
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=BUCKET_REGION,
            aws_access_key_id=keys.access_key_id,
            aws_secret_access_key=keys.secret_access_key,
        )


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("moto server did not start within 30 seconds")


@contextmanager
def iam_enforcing_moto(
    bucket: str, writer_policy: dict, pruner_policy: dict
) -> Iterator[IamServer]:
    """Start moto in its own process with IAM enforcement, set up by its first calls.

    moto lets the first INITIAL_NO_AUTH_ACTION_COUNT requests through without
    authentication. They create the bucket (with Object Lock), the users, their
    policies and access keys. A bogus key then uses up the rest, so from then on
    every request is checked against the policies.
    """
    import boto3
    import botocore.exceptions

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    environment = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="30")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        setup = {
            "endpoint_url": endpoint,
            "region_name": BUCKET_REGION,
            "aws_access_key_id": "setup",
            "aws_secret_access_key": "setup",
        }
        s3 = boto3.client("s3", **setup)
        iam = boto3.client("iam", **setup)
        s3.create_bucket(
            Bucket=bucket,
            CreateBucketConfiguration={"LocationConstraint": BUCKET_REGION},
            ObjectLockEnabledForBucket=True,
        )
        keys = {}
        for user, policy in (("writer", writer_policy), ("pruner", pruner_policy)):
            iam.create_user(UserName=user)
            iam.put_user_policy(
                UserName=user, PolicyName=user, PolicyDocument=json.dumps(policy)
            )
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = Keys(key["AccessKeyId"], key["SecretAccessKey"])
        bogus = boto3.client("s3", **setup)
        for _attempt in range(40):
            try:
                bogus.list_buckets()
            except botocore.exceptions.ClientError:
                break
        else:
            raise RuntimeError("moto never started checking credentials")
        yield IamServer(endpoint, bucket, keys["writer"], keys["pruner"])
    finally:
        process.terminate()
        process.wait(timeout=30)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1 and its key into `folder`."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextmanager
def tls_front(upstream: str, folder: Path) -> Iterator[str]:
    """Serve `upstream` (plain HTTP) over TLS on 127.0.0.1; yield the https URL.

    pgBackRest speaks to S3 over TLS only. The front ends every connection with
    a TLS close_notify, which OpenSSL 3 requires and moto's own --ssl server
    does not send.
    """
    import asyncio
    import ssl

    target = urlsplit(upstream)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(folder))
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                writer.close()
                await writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            target.hostname, target.port
        )
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def serve() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(
            asyncio.start_server(handle, "127.0.0.1", port, ssl=context)
        )
        started.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
