"""Throwaway certificates for TLS tests, made with the ``cryptography`` package: a CA, a server
certificate for localhost / 127.0.0.1, a client certificate (mutual TLS), an expired server
certificate, and a second CA that signed none of them."""
from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Certs:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    expired_cert: Path
    expired_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(ca: x509.Certificate, ca_key, cn: str, usage, *, expired: bool = False,
          hosts: tuple[str, ...] = ("localhost",)):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    start, end = (now - dt.timedelta(days=10), now - dt.timedelta(days=1)) if expired else \
        (now - dt.timedelta(days=1), now + dt.timedelta(days=30))
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               # Python's default context verifies strictly (X509_STRICT): key identifiers required.
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [*(x509.DNSName(h) for h in hosts), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_certs(directory: Path, hosts: tuple[str, ...] = ("localhost",)) -> Certs:
    """``hosts``: the names the server certificates are for (and 127.0.0.1)."""
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    ca, ca_key = _ca("saga test CA")
    other, _ = _ca("some other CA")
    server, server_key = _leaf(ca, ca_key, hosts[0], ExtendedKeyUsageOID.SERVER_AUTH, hosts=hosts)
    client, client_key = _leaf(ca, ca_key, "saga-client", ExtendedKeyUsageOID.CLIENT_AUTH)
    expired, expired_key = _leaf(ca, ca_key, hosts[0], ExtendedKeyUsageOID.SERVER_AUTH, expired=True, hosts=hosts)
    paths = {}
    for name, cert in (("ca", ca), ("other_ca", other), ("server_cert", server), ("client_cert", client),
                       ("expired_cert", expired)):
        paths[name] = directory / f"{name}.pem"
        paths[name].write_bytes(cert.public_bytes(pem))
    for name, key in (("server_key", server_key), ("client_key", client_key), ("expired_key", expired_key)):
        paths[name] = _write_key(directory / f"{name}.pem", key)
    return Certs(**paths)


def install(directory: Path, cert: Path, key: Path) -> tuple[Path, Path]:
    """Puts a certificate and key at ``directory``/tls.crt and tls.key (where a server reads them),
    replacing what is there as a rotated Secret does: each file swapped in whole, never half-written."""
    directory.mkdir(parents=True, exist_ok=True)
    placed = []
    for source, name in ((key, "tls.key"), (cert, "tls.crt")):
        target = directory / name
        staged = directory / f".{name}.new"
        staged.write_bytes(source.read_bytes())
        staged.replace(target)
        placed.append(target)
    return placed[1], placed[0]
