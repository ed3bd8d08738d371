"""TLS material: a certificate authority and the certificates it issues (``cryptography``).

Used by the local secure broker (`hub kafka start --secure`), by `hub tls` (compose's
certificate init service, the gateway's HTTPS) and by tests. Private keys are written 0600.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

CA_DAYS = 3650
LEAF_DAYS = 825  # the longest validity browsers accept for a server certificate


class TlsError(Exception):
    """TLS material cannot be created or read; the message says which file and why."""


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, as PEM files."""

    cert_file: Path
    key_file: Path

    @property
    def subject(self) -> str:
        return certificate(self.cert_file).subject.rfc4514_string()


def certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise TlsError(f"{path}: not a readable PEM certificate ({exc})") from exc


def private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise TlsError(f"{path}: not a readable unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsError(f"{path}: expected an EC private key")
    return key


def subject_name(subject: str) -> x509.Name:
    """``CN=hotich-79,O=So Tu phap TP HCM`` (RFC 4514) as a certificate name."""
    try:
        name = x509.Name.from_rfc4514_string(subject)
    except ValueError as exc:
        raise TlsError(f"not a certificate subject (RFC 4514, e.g. CN=a,O=b): {subject!r}") from exc
    if not list(name):
        raise TlsError("a certificate subject needs at least one attribute, e.g. CN=name")
    return name


def same_subject(a: x509.Name, b: x509.Name) -> bool:
    """Equal names whatever the order their attributes were written in."""
    return sorted((attr.oid.dotted_string, str(attr.value)) for attr in a) == sorted(
        (attr.oid.dotted_string, str(attr.value)) for attr in b
    )


def write_private(path: Path, data: bytes | str) -> None:
    """Write a secret: the file is 0600 from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
    path.chmod(0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


def new_authority(directory: Path, name: str) -> Issued:
    """The CA in ``directory`` (ca.pem, ca-key.pem), created on first use and kept after."""
    cert_file, key_file = directory / "ca.pem", directory / "ca-key.pem"
    if cert_file.exists() and key_file.exists():
        return Issued(cert_file, key_file)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(key_file, _key_pem(key))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Issued(cert_file, key_file)


def issue_certificate(ca: Issued, prefix: Path, subject: str, *, hosts: Sequence[str] = (),
                      client: bool = False, server: bool = False,
                      days: int = LEAF_DAYS) -> Issued:  # fmt: skip
    """Issue ``prefix``.pem / ``prefix``-key.pem for ``subject`` signed by ``ca``.

    ``hosts`` (DNS names or IP addresses) go in the subject alternative names; ``server`` and
    ``client`` set the extended key usages (both for a broker that is also a client of its
    controller).
    """
    ca_cert, ca_key = certificate(ca.cert_file), private_key(ca.key_file)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject_name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
    usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    issued = Issued(
        prefix.with_name(prefix.name + ".pem"), prefix.with_name(prefix.name + "-key.pem")
    )
    write_private(issued.key_file, _key_pem(key))
    issued.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return issued


def pkcs12_keystore(issued: Issued, ca: Issued, path: Path, password: str) -> Path:
    """``issued`` with its chain as a PKCS#12 keystore (what a Java broker reads), 0600."""
    data = pkcs12.serialize_key_and_certificates(
        b"hub", private_key(issued.key_file), certificate(issued.cert_file),
        [certificate(ca.cert_file)], serialization.BestAvailableEncryption(password.encode()),
    )  # fmt: skip
    write_private(path, data)
    return path


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A TLS server context; with ``client_ca``, clients must present a certificate it issued."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        ctx.load_verify_locations(cafile=str(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(ca: Path | None = None, cert: Path | None = None,
                   key: Path | None = None) -> ssl.SSLContext:  # fmt: skip
    """A TLS client context: the server verified against ``ca`` (else the system's trust
    store), presenting ``cert``/``key`` when given (mutual TLS)."""
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cert is not None and key is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def peer_subject(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> x509.Name | None:
    """The verified client certificate's subject on a TLS connection (None: no certificate)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return x509.load_der_x509_certificate(der).subject
