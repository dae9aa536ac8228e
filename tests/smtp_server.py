"""A real SMTP server on 127.0.0.1 for tests and the benchmark (aiosmtpd), with fault injection.

In-process (a thread):

    with LoopbackSmtp() as server:
        server.faults.refuse_connections = 1           # 421 greeting, then close
        server.faults.data_replies.append("451 4.3.0 try later")   # next DATA
        server.faults.reject_recipients["bad@example.org"] = "550 5.1.1 no such user"
        server.faults.hang_up_after = 3                 # close at MAIL FROM once 3 messages arrived
        server.stop(); server.start()                   # down, then back on the same port
        server.count_by_message_id()

In another process (crash test, benchmark): `SmtpServerProcess(record_path)` runs this file as a
script; every accepted message is appended to a JSON-lines file (flushed per message) and read
back with `records()`.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

_HEADER = {name: re.compile(rb"^" + name + rb":[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
           for name in (b"Message-ID", b"X-Test-Key")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _header(content: bytes, name: bytes) -> str | None:
    head = content.split(b"\r\n\r\n", 1)[0]
    match = _HEADER[name].search(head)
    return re.sub(rb"\r?\n", b"", match.group(1)).strip().decode("ascii", "replace") if match else None


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message_id: str | None
    key: str | None  # the X-Test-Key header, when a test put one there
    size: int


@dataclass
class Faults:
    refuse_connections: int = 0  # the next N connections get a 421 greeting and are closed
    data_replies: deque = field(default_factory=deque)  # replies for the next DATA commands, e.g. "451 …"
    reject_recipients: dict = field(default_factory=dict)  # address -> reply at RCPT TO
    hang_up_after: int | None = None  # close the connection at MAIL FROM once this many were accepted


class Recorder:
    """aiosmtpd handler: applies the faults and records what it accepts."""

    def __init__(self, record_path: Path | None = None):
        self.faults = Faults()
        self.messages: list[Received] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._record = open(record_path, "a", encoding="utf-8") if record_path else None

    def take_refusal(self) -> bool:
        self.connections += 1
        if self.faults.refuse_connections > 0:
            self.faults.refuse_connections -= 1
            return True
        return False

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        limit = self.faults.hang_up_after
        if limit is not None and len(self.messages) >= limit:
            self.faults.hang_up_after = None
            server.transport.abort()  # mid-batch hang-up: no reply at all
            return "421 4.3.2 closing"  # never reaches the client
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.faults.reject_recipients.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.faults.data_replies:
            return self.faults.data_replies.popleft()
        content = envelope.original_content or b""
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), _header(content, b"Message-ID"),
                            _header(content, b"X-Test-Key"), len(content))
        with self._lock:
            self.messages.append(received)
            if self._record:
                self._record.write(json.dumps(received.__dict__) + "\n")
                self._record.flush()
        return "250 OK queued"


class _FaultySMTP(SMTP):
    async def _handle_client(self):
        if self.event_handler.take_refusal():
            await self.push("421 4.3.2 Service not available, closing transmission channel")
            self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    def factory(self):
        return _FaultySMTP(self.handler, **self.SMTP_kwargs)


class LoopbackSmtp:
    """aiosmtpd in a thread of this process; stop()/start() keep the port (server down, then back)."""

    def __init__(self, port: int | None = None, record_path: Path | None = None,
                 credentials: tuple[str, str] | None = None):
        self.port = port or free_port()
        self.handler = Recorder(record_path)
        self.credentials = credentials  # when set, AUTH is offered and checked (plain TCP: loopback only)
        self._controller = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        return AuthResult(success=ok, handled=False)

    @property
    def faults(self) -> Faults:
        return self.handler.faults

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def start(self) -> "LoopbackSmtp":
        # auth_required=False: aiosmtpd warns about requiring AUTH without TLS; a wrong login still gets 535.
        auth = dict(authenticator=self._authenticate, auth_required=False, auth_require_tls=False) \
            if self.credentials else {}
        self._controller = _Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                       server_hostname="loopback.test", ready_timeout=10, **auth)
        self._controller.start()
        self.handler.connections -= 1  # the controller's own readiness probe
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> "LoopbackSmtp":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def count_by_message_id(self) -> Counter:
        return Counter(message.message_id for message in self.messages)


class SmtpServerProcess:
    """This file run as a script in a child process; accepted messages go to `record_path` (JSON lines)."""

    def __init__(self, record_path: Path, port: int | None = None):
        self.record_path = Path(record_path)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> "SmtpServerProcess":
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--port", str(self.port), "--record", str(self.record_path)],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        line = self.process.stdout.readline()
        if not line.startswith("READY"):
            self.stop()
            raise RuntimeError(f"SMTP server process did not start: {line!r}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> "SmtpServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def records(self) -> list[Received]:
        if not self.record_path.exists():
            return []
        with open(self.record_path, encoding="utf-8") as lines:
            return [Received(**json.loads(line)) for line in lines if line.endswith("\n")]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """The records once at least `count` arrived (the server writes as it accepts)."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.records()
            if len(records) >= count or time.monotonic() > deadline:
                return records
            time.sleep(0.05)


def _serve(port: int, record: Path) -> None:
    server = LoopbackSmtp(port, record).start()
    print(f"READY {server.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="aiosmtpd loopback server recording to a JSON-lines file")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _serve(args.port or free_port(), args.record)
