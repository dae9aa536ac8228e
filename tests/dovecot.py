"""A throwaway Dovecot IMAP server on loopback (Debian's dovecot-imapd), for the tests of `mail fetch`.

Started as root with a configuration of its own in a temporary folder (DESIGN §4): Maildir storage,
a passwd-file with one user, a self-signed certificate (STARTTLS and IMAPS), plain logins allowed. Stopped by killing its master process.
"""

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"
USER, PASSWORD = "replies", "secret"


@dataclass
class Dovecot:
    base: Path
    port: int  # plain IMAP, STARTTLS offered
    tls_port: int  # IMAP over TLS
    user: str = USER
    password: str = PASSWORD

    @property
    def ca_file(self) -> Path:
        """The self-signed certificate of the server, for a client to trust."""
        return self.base / "cert.pem"

    @property
    def maildir(self) -> Path:
        return self.base / "mail" / self.user

    def stop(self) -> None:
        pid_file = self.base / "run" / "master.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().strip())
            os.kill(pid, 15)
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)


def unavailable() -> str:
    """Why Dovecot cannot run here ("" when it can)."""
    if not Path(DOVECOT).exists():
        return "dovecot-imapd is not installed (.ci/run installs it)"
    if os.geteuid() != 0:
        return "Dovecot's master must start as root"
    try:
        pwd.getpwnam("dovecot"), pwd.getpwnam("dovenull")
    except KeyError:
        return "the dovecot / dovenull users are missing"
    return ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _self_signed(base: Path) -> None:
    """A certificate for 127.0.0.1 (cryptography comes with Prefect; no openssl binary needed)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    (base / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (base / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    os.chmod(base / "key.pem", 0o600)


def start(base: Path) -> Dovecot:
    port, tls_port = _free_port(), _free_port()
    _self_signed(base)
    run, mail = base / "run", base / "mail"
    run.mkdir(parents=True)
    (mail / USER).mkdir(parents=True)
    (base / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    (base / "dovecot.conf").write_text(f"""
protocols = imap
listen = 127.0.0.1
base_dir = {run}
state_dir = {base / 'state'}
log_path = {base / 'dovecot.log'}
ssl = yes
ssl_cert = <{base / 'cert.pem'}
ssl_key = <{base / 'key.pem'}
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
first_valid_gid = 1
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:{mail}/%u
passdb {{
  driver = passwd-file
  args = {base / 'passwd'}
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={mail}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
""")
    (base / "state").mkdir()
    shutil.chown(mail, "dovecot", "dovecot")
    shutil.chown(mail / USER, "dovecot", "dovecot")
    os.chmod(base, 0o755)
    # The master forks into the background and its children keep the standard streams: no pipes here.
    subprocess.run([DOVECOT, "-c", str(base / "dovecot.conf")], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    server = Dovecot(base, port, tls_port)
    for _ in range(100):  # the master answers within a fraction of a second
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(100).startswith(b"* OK"):
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"Dovecot did not answer on port {port}: {(base / 'dovecot.log').read_text()[-2000:]}")
