"""Transports: how prepared message bytes leave the machine.

Protocol: `with transport.connect() as conn: conn.send(payload, sender, recipients)`.
`send` returns the recipients the server refused while accepting the message for the others
({address: (code, reply)}, usually empty) and raises TransientError (4xx, connection trouble:
retry later) or PermanentError (5xx: do not retry) when the message was not accepted at all.

`send(..., barrier=f)`: f() is called once, before the server can accept the message (SMTP: right
after MAIL FROM is written, while the server reads it); if f raises, the message is abandoned.
The outbox commits the previous message's outcome there, overlapping a network round trip.
"""

import itertools
import logging
import os
import re
import smtplib
import socket
from contextlib import contextmanager
from email.utils import parseaddr
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Protocol

import yagmail

from models.settings import Settings, SmtpTls

log = logging.getLogger("roundtable.transport")

Refused = dict[str, tuple[int, str]]


class DeliveryError(Exception):
    def __init__(self, message: str, *, code: int | None = None):
        super().__init__(message)
        self.code = code


class TransientError(DeliveryError):
    """Try again later. `connection_lost`: the connection is unusable for the rest of the batch."""

    def __init__(self, message: str, *, code: int | None = None, connection_lost: bool = False):
        super().__init__(message, code=code)
        self.connection_lost = connection_lost


class PermanentError(DeliveryError):
    """The server refused this message for good (5xx)."""


Barrier = Callable[[], None] | None


class Connection(Protocol):
    def send(self, payload: bytes, sender: str, recipients: list[str], *, kind: str = "message",
             barrier: Barrier = None) -> Refused: ...


class Transport(Protocol):
    def connect(self) -> ContextManager[Connection]: ...


def _reply_text(reply) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def classify(exc: smtplib.SMTPResponseException) -> DeliveryError:
    """4xx -> TransientError, 5xx -> PermanentError; 421 means the server is closing the connection."""
    code, text = exc.smtp_code, _reply_text(exc.smtp_error)
    message = f"{code} {text}"
    if 500 <= code < 600:
        return PermanentError(message, code=code)
    return TransientError(message, code=code, connection_lost=code == 421 or not 400 <= code < 500)


class _SmtpConnection:
    def __init__(self, smtp: smtplib.SMTP):
        self.smtp = smtp
        self._barrier: Barrier = None
        self._putcmd = smtp.putcmd
        # sendmail() writes MAIL FROM via self.putcmd and then waits for the reply: running the
        # barrier in between lets the caller's commit overlap that round trip, long before the
        # message can be accepted (an instance attribute shadows the method for this connection).
        smtp.putcmd = self._putcmd_then_barrier

    def _putcmd_then_barrier(self, cmd: str, args: str = "") -> None:
        self._putcmd(cmd, args)
        if cmd == "mail" and self._barrier is not None:
            barrier, self._barrier = self._barrier, None
            try:
                barrier()
            except BaseException:
                self.smtp.close()  # abandon the message: nothing of it was accepted
                raise

    def send(self, payload: bytes, sender: str, recipients: list[str], *, kind: str = "message",
             barrier: Barrier = None) -> Refused:
        self._barrier = barrier
        try:
            refused = self.smtp.sendmail(sender, recipients, payload)
        except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused: nothing was sent
            codes = {address: (code, _reply_text(reply)) for address, (code, reply) in exc.recipients.items()}
            detail = "; ".join(f"{address}: {code} {reply}" for address, (code, reply) in codes.items())
            if all(500 <= code < 600 for code, _ in codes.values()):
                raise PermanentError(detail, code=max(code for code, _ in codes.values())) from exc
            raise TransientError(detail, code=min(code for code, _ in codes.values())) from exc
        except smtplib.SMTPResponseException as exc:  # MAIL FROM or DATA refused, or 421
            raise classify(exc) from exc
        except (smtplib.SMTPException, OSError) as exc:  # hang-up, timeout, reset
            raise TransientError(f"connection lost: {exc!r}", connection_lost=True) from exc
        return {address: (code, _reply_text(reply)) for address, (code, reply) in refused.items()}


class SmtpTransport:
    """SMTP through yagmail's connection handling (login, TLS); messages are our own bytes.

    One connection per `connect()`: a whole batch goes over it. The password stays a SecretStr
    until the login call and never appears in reprs, logs or error messages.
    """

    def __init__(self, settings: Settings, *, timeout: float = 30.0):
        if not settings.smtp_host:
            raise ValueError("SmtpTransport needs ROUNDTABLE_SMTP_HOST")
        if settings.smtp_user and settings.smtp_password is None:
            # yagmail would otherwise ask the keyring or prompt on the terminal.
            raise ValueError("ROUNDTABLE_SMTP_USER is set but ROUNDTABLE_SMTP_PASSWORD is not")
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.user = settings.smtp_user
        self.tls = settings.smtp_tls
        self.timeout = timeout
        self._password = settings.smtp_password
        # yagmail wants an address even when it does not log in; the sender's will do.
        self._yagmail_user = settings.smtp_user or parseaddr(settings.sender)[1] or "roundtable@localhost"

    def __repr__(self) -> str:
        return f"SmtpTransport({self.host}:{self.port}, tls={self.tls.value}, user={self.user!r})"

    def _client(self) -> yagmail.SMTP:
        client = yagmail.SMTP(
            user=self._yagmail_user,
            password=self._password.get_secret_value() if self._password else None,
            host=self.host, port=self.port,
            smtp_ssl=self.tls is SmtpTls.ssl, smtp_starttls=self.tls is SmtpTls.starttls,
            smtp_skip_login=self.user is None, soft_email_validation=False, timeout=self.timeout,
        )
        client.set_logging(None)  # no console handler: our log says what happened
        if self.user:
            client.user = self.user  # yagmail appends "@gmail.com" to a login without "@"
        return client

    @contextmanager
    def connect(self) -> Iterator[_SmtpConnection]:
        client = self._client()
        try:
            client.login()
        except smtplib.SMTPAuthenticationError as exc:
            # A configuration problem, not the messages' fault: keep them for a later attempt.
            raise TransientError(f"SMTP login refused by {self.host}: {exc.smtp_code} "
                                 f"{_reply_text(exc.smtp_error)}", code=exc.smtp_code, connection_lost=True) from exc
        except smtplib.SMTPResponseException as exc:  # e.g. 421 greeting
            error = classify(exc)
            raise TransientError(f"cannot connect to {self.host}:{self.port}: {error}", code=error.code,
                                 connection_lost=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"cannot connect to {self.host}:{self.port}: {exc!r}", connection_lost=True) from exc
        # Small commands after a large body must not wait for Nagle's algorithm.
        client.smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            yield _SmtpConnection(client.smtp)
        finally:
            try:
                client.close()
            except (smtplib.SMTPException, OSError):
                pass  # the server already hung up


class _FileConnection:
    def __init__(self, directory: Path, folder: int, numbers: Iterator[int]):
        self.directory = directory
        # Names below are relative to the folder's descriptor and bytes go through os.write: no path
        # joins, Path objects or buffered files per message (they were ~5 of its ~27 us on tmpfs).
        self._folder = folder
        self._temporary = f".{os.getpid()}-{id(self)}.tmp"  # one per connection: threads never share it
        self._numbers = numbers
        self._last_name: str | None = None

    @property
    def last_path(self) -> Path | None:
        """The file the last send wrote (deliver_due hands it to on_sent); built only when asked for."""
        return None if self._last_name is None else self.directory / self._last_name

    def send(self, payload: bytes, sender: str, recipients: list[str], *, kind: str = "message",
             barrier: Barrier = None) -> Refused:
        handle = os.open(self._temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666, dir_fd=self._folder)
        try:
            unwritten = memoryview(payload)
            while unwritten:  # os.write may write less than it was given
                unwritten = unwritten[os.write(handle, unwritten):]
        finally:
            os.close(handle)
        if barrier is not None:
            barrier()  # before the link below, which is this transport's "acceptance"
        while True:  # link, not rename: never overwrite a file another process just wrote
            name = f"{next(self._numbers):04d}-{kind}.eml"
            try:
                os.link(self._temporary, name, src_dir_fd=self._folder, dst_dir_fd=self._folder)
                break
            except FileExistsError:
                continue
        os.unlink(self._temporary, dir_fd=self._folder)
        self._last_name = name
        return {}


class FileTransport:
    """Writes each message, byte for byte, to <dir>/NNNN-<kind>.eml (no SMTP server configured)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._numbers: Iterator[int] | None = None

    def __repr__(self) -> str:
        return f"FileTransport({str(self.directory)!r})"

    @contextmanager
    def connect(self) -> Iterator[_FileConnection]:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._numbers is None:  # the folder is read once, not at every connect (it holds thousands)
            taken = [int(m.group(1)) for p in self.directory.glob("*.eml") if (m := re.match(r"(\d+)-", p.name))]
            self._numbers = itertools.count(max(taken, default=0) + 1)
        folder = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            yield _FileConnection(self.directory, folder, self._numbers)
        finally:
            os.close(folder)


def transport_from_settings(settings: Settings) -> Transport:
    """SMTP when ROUNDTABLE_SMTP_HOST is set, else files in settings.outbox_dir."""
    if settings.smtp_host:
        return SmtpTransport(settings)
    return FileTransport(settings.outbox_dir)
