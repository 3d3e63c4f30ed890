"""Certificates and keys of the kube target's control plane, written into the stack's state folder.

One self-signed CA signs the API server's serving certificate (127.0.0.1 and localhost) and
one client certificate in `system:masters`, which the controller-manager, scheduler, kwok and
the pulumi-kubernetes provider use through one kubeconfig. The service-account signing key
is a separate RSA pair, as the API server and controller-manager expect. Everything lives
only on this machine and is removed with the stack.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

VALID_DAYS = 365
HOST = "127.0.0.1"


@dataclass(frozen=True)
class PkiPaths:
    """The files of one stack's PKI, under `<state>/kube/pki`."""

    folder: Path

    def __getattr__(self, name: str) -> Path:
        names = {
            "ca_crt": "ca.crt",
            "ca_key": "ca.key",
            "server_crt": "apiserver.crt",
            "server_key": "apiserver.key",
            "admin_crt": "admin.crt",
            "admin_key": "admin.key",
            "sa_key": "sa.key",
            "sa_pub": "sa.pub",
            "kubeconfig": "admin.kubeconfig",
        }
        if name not in names:
            raise AttributeError(name)
        return self.folder / names[name]


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: tuple[x509.Name, rsa.RSAPrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if not ca:
        usage = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.write_bytes(data)
    path.chmod(mode)


def write_pki(folder: Path, apiserver_port: int) -> PkiPaths:
    """Generate every certificate, key and the admin kubeconfig into `folder` (replacing any there)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = PkiPaths(folder)
    ca_key, server_key, admin_key, sa_key = _key(), _key(), _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llmops-kube-ca")])
    ca = _cert(ca_name, ca_key, None, ca=True)
    server = _cert(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        server_key,
        (ca_name, ca_key),
        server=True,
    )
    admin_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(NameOID.COMMON_NAME, "llmops-admin"),
        ]
    )
    admin = _cert(admin_name, admin_key, (ca_name, ca_key))
    pem = serialization.Encoding.PEM
    _write(paths.ca_crt, ca.public_bytes(pem), 0o644)
    _write(paths.ca_key, _pem_key(ca_key))
    _write(paths.server_crt, server.public_bytes(pem), 0o644)
    _write(paths.server_key, _pem_key(server_key))
    _write(paths.admin_crt, admin.public_bytes(pem), 0o644)
    _write(paths.admin_key, _pem_key(admin_key))
    _write(paths.sa_key, _pem_key(sa_key))
    sa_pub = sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    _write(paths.sa_pub, sa_pub, 0o644)
    _write(paths.kubeconfig, kubeconfig(paths, apiserver_port).encode())
    return paths


def kubeconfig(paths: PkiPaths, apiserver_port: int) -> str:
    """A kubeconfig with the admin credentials inline (the provider gets it as one string)."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return f"""apiVersion: v1
kind: Config
clusters:
- name: llmops-kube
  cluster:
    server: https://{HOST}:{apiserver_port}
    certificate-authority-data: {b64(paths.ca_crt)}
users:
- name: llmops-admin
  user:
    client-certificate-data: {b64(paths.admin_crt)}
    client-key-data: {b64(paths.admin_key)}
contexts:
- name: llmops-kube
  context: {{cluster: llmops-kube, user: llmops-admin}}
current-context: llmops-kube
"""
