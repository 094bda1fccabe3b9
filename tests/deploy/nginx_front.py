"""deploy/nginx.conf run for real: Debian's nginx, a test CA, in front of a real hub.

The config under test is deploy/nginx.conf itself; :func:`render` changes only what a test
must (the listen port, the certificate directory, the hub's port, and for the mTLS variant
the two commented client-verification lines). :class:`TlsConn` speaks TLS over a plain
socket through memory BIOs, so a test can half-close the TCP stream (FIN) and still read
the answer, which ``ssl.SSLSocket.shutdown`` cannot.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import trustme

from devtools.stack import REPO, Proc, free_port, port_open, wait_for

CONF = REPO / "deploy" / "nginx.conf"
SHIPPED_TLS_DIR = "/etc/edge-hub/tls"


def nginx_binary() -> str:
    path = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )
    if path is None:
        raise FileNotFoundError("nginx is not installed: apt-get install -y nginx (see .ci/run)")
    return path


def render(port: int, tls_dir: Path, hub_port: int, *, mtls: bool = False) -> str:
    """deploy/nginx.conf with only the listen port, the paths and the hub's port changed."""
    text = CONF.read_text()
    replacements = {
        "listen 443 ssl;": f"listen 127.0.0.1:{port} ssl;",
        f"{SHIPPED_TLS_DIR}/": f"{tls_dir}/",
        # Both upstreams (the plain one and the one for large bodies) name the hub.
        "server 127.0.0.1:8080": f"server 127.0.0.1:{hub_port}",
    }
    if mtls:
        replacements["# ssl_client_certificate"] = "ssl_client_certificate"
        replacements["# ssl_verify_client"] = "ssl_verify_client"
    for old, new in replacements.items():
        if old not in text:
            raise AssertionError(f"deploy/nginx.conf no longer contains {old!r}")
        text = text.replace(old, new)
    return text


@dataclass
class Certs:
    ca: trustme.CA
    dir: Path

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def client_cert(self) -> Path:
        return self.dir / "gw-01.crt"

    @property
    def client_key(self) -> Path:
        return self.dir / "gw-01.key"


def make_certs(directory: Path) -> Certs:
    """A CA, the hub's certificate (localhost, 127.0.0.1) as hub.crt/hub.key, a client
    certificate for gw-01, and the CA again as the clients' CA for mTLS."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    ca.cert_pem.write_to_path(str(directory / "clients-ca.crt"))
    server = ca.issue_cert("localhost", "127.0.0.1")
    server.private_key_pem.write_to_path(str(directory / "hub.key"))
    (directory / "hub.crt").write_bytes(b"".join(p.bytes() for p in server.cert_chain_pems))
    client = ca.issue_cert("gw-01")
    client.private_key_pem.write_to_path(str(directory / "gw-01.key"))
    (directory / "gw-01.crt").write_bytes(b"".join(p.bytes() for p in client.cert_chain_pems))
    os.chmod(directory / "hub.key", 0o600)
    os.chmod(directory / "gw-01.key", 0o600)
    return Certs(ca, directory)


class Nginx:
    """nginx in the foreground (daemon off) with a prefix of its own under ``workdir``."""

    def __init__(self, workdir: Path, site: str, port: int) -> None:
        self.workdir = workdir
        self.port = port
        workdir.mkdir(parents=True, exist_ok=True)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (workdir / sub).mkdir(exist_ok=True)
        (workdir / "edge-hub.conf").write_text(site)
        # As root nginx's workers would switch to "nobody", which cannot enter a root-only
        # pytest temp dir; staying the user we are keeps the temp files writable.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.main_conf = workdir / "nginx.conf"
        self.main_conf.write_text(
            f"{user}worker_processes 1;\n"
            f"pid {workdir}/nginx.pid;\n"
            f"error_log {workdir}/error.log info;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            f"    access_log {workdir}/access.log;\n"
            f"    client_body_temp_path {workdir}/body;\n"
            f"    proxy_temp_path {workdir}/proxy;\n"
            f"    fastcgi_temp_path {workdir}/fastcgi;\n"
            f"    uwsgi_temp_path {workdir}/uwsgi;\n"
            f"    scgi_temp_path {workdir}/scgi;\n"
            f"    include {workdir}/edge-hub.conf;\n"
            "}\n"
        )
        self.argv = [nginx_binary(), "-p", str(workdir), "-c", str(self.main_conf)]
        self.proc = Proc("nginx", [*self.argv, "-g", "daemon off;"], workdir)

    def check(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.argv, "-t"], capture_output=True, text=True, timeout=30, check=False
        )

    def start(self) -> Nginx:
        self.proc.start()
        wait_for("nginx to listen", lambda: port_open(self.port) or not self.proc.running)
        if not self.proc.running:
            raise RuntimeError(f"nginx exited: {self.proc.log_tail()}\n{self.error_log()}")
        return self

    def stop(self) -> None:
        self.proc.stop()

    def error_log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_front(workdir: Path, certs: Certs, hub_port: int, *, mtls: bool = False) -> Nginx:
    port = free_port()
    return Nginx(workdir, render(port, certs.dir, hub_port, mtls=mtls), port).start()


class TlsConn:
    """One TLS connection over a plain TCP socket, driven through memory BIOs."""

    def __init__(self, port: int, ctx: ssl.SSLContext, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.eof = False
        self.received = b""  # decrypted bytes from the server so far
        self._until_done(self.tls.do_handshake)

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            self.incoming.write_eof()
            self.eof = True
            return False
        self.incoming.write(data)
        return True

    def _until_done(self, step: object) -> object:
        while True:
            try:
                result = step()  # type: ignore[operator]
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    raise ConnectionError("connection closed during TLS") from None
                continue
            self._flush()
            return result

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()

    def half_close(self) -> None:
        """TCP FIN with no TLS close_notify: the stream just ends, as on a cut request."""
        self.sock.shutdown(socket.SHUT_WR)

    def poll_response(self) -> bytes:
        """Everything the server has sent so far, without blocking."""
        self.sock.setblocking(False)
        try:
            while self._fill():
                pass
        except (BlockingIOError, ssl.SSLWantReadError):
            pass
        except (BrokenPipeError, ConnectionResetError):
            self.eof = True
        finally:
            self.sock.setblocking(True)
        return self._drain()

    def _drain(self) -> bytes:
        while True:
            try:
                chunk = self.tls.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                return self.received
            except ssl.SSLError:
                # The peer closed the TCP stream without close_notify (nginx does on errors).
                return self.received
            if not chunk:
                return self.received
            self.received += chunk

    def read_response(self, deadline_s: float = 30.0) -> bytes:
        """Everything until the server closes, or until one complete response has arrived."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            data = self._drain()
            if _complete(data) or self.eof:
                return data
            try:
                if not self._fill():
                    return self._drain()
            except (ConnectionResetError, TimeoutError):
                self.eof = True
                return self._drain()
        return self._drain()

    def close(self) -> None:
        self.sock.close()


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def status_of(response: bytes) -> int | None:
    """The status code of a raw HTTP/1.1 response, None when nothing came back."""
    if not response.startswith(b"HTTP/1."):
        return None
    return int(response.split(b" ", 2)[1])
