"""The validator's TLS identity on the peer port: who is on the other end of a connection.

Peers reach each other over mutual TLS. Each validator has a P-256 TLS key (`tls.key`,
mode 0600) and a self-signed certificate (`tls.pem`) that its operator hands to peers
beside the consensus-msg-key, as MobileCoin's peer URIs carry a CA bundle. A peer's
certificate is pinned: the peer server trusts exactly the configured peers' certificates,
and a handler learns which peer a call came from by matching the certificate the client
presented (`PeerCerts.name_of`), byte for byte, so an outsider never gets past the TLS
handshake and no unsigned field has to be believed about who sent what.

Ed25519 would let the consensus key itself be the TLS key, but gRPC's TLS does not offer
Ed25519 signatures. Instead the certificate carries the consensus key's vouching: an
extension holding an Ed25519 signature, by the node's consensus-msg-key, over the TLS
public key. A node refuses to start with a peer certificate its peer's consensus key did
not vouch for (a swapped or stale file fails at start, by name, not at the first call).

Every certificate names `PEER_TLS_NAME` as its DNS name (node names need not be DNS
names): the pin, not the name, is the identity.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from mcnode.crypto.rng import RandomSource
from mcnode.crypto.signing import ed25519_public, ed25519_sign, ed25519_verify
from mcnode.files import PrivateFileError, read_private_file, write_atomic

PEER_TLS_NAME = "mcnode-peer"
# A private-use arc: the extension is ours and only we read it.
VOUCH_OID = ObjectIdentifier("1.3.6.1.4.1.55555.1.1")
VOUCH_DOMAIN = b"mcnode-tls-vouch-v1"
MAX_CERT_BYTES = 16 * 1024
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class TlsError(ValueError):
    """A TLS key or certificate that cannot be used (one line, naming the file)."""


@dataclass(frozen=True)
class TlsIdentity:
    """Our key and certificate, PEM, as gRPC takes them."""

    key_pem: bytes
    cert_pem: bytes


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def make_tls_identity(name: str, signing_private: bytes, rng: RandomSource) -> TlsIdentity:
    """A fresh P-256 key and a self-signed certificate vouched for by `signing_private`
    (the node's Ed25519 consensus key). Valid until 9999: like the consensus key, it is
    an identity that is pinned and replaced by reconfiguring peers, not by a calendar."""
    scalar = int.from_bytes(rng(48), "big") % (_P256_ORDER - 1) + 1
    key = ec.derive_private_key(scalar, ec.SECP256R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    vouch = ed25519_public(signing_private) + ed25519_sign(signing_private, VOUCH_DOMAIN + spki)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(rng(16), "big") >> 1 or 1)
        .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(9999, 12, 31, tzinfo=datetime.UTC))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(PEER_TLS_NAME)]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .add_extension(x509.UnrecognizedExtension(VOUCH_OID, vouch), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return TlsIdentity(key_pem, cert.public_bytes(serialization.Encoding.PEM))


def write_tls_identity(key_path: Path, cert_path: Path, identity: TlsIdentity) -> None:
    write_atomic(key_path, identity.key_pem, mode=0o600)
    write_atomic(cert_path, identity.cert_pem, mode=0o644)


def _load_cert(path: Path) -> tuple[x509.Certificate, bytes]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CERT_BYTES + 1)
    except OSError as e:
        raise TlsError(f"{path}: cannot read: {e.strerror}") from e
    if len(data) > MAX_CERT_BYTES:
        raise TlsError(f"{path}: too large for a certificate")
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise TlsError(f"{path}: not a PEM certificate") from None
    return cert, cert.public_bytes(serialization.Encoding.PEM)


def vouched_by(cert: x509.Certificate) -> bytes | None:
    """The consensus key that vouched for this certificate's TLS key, or None."""
    try:
        ext = cert.extensions.get_extension_for_oid(VOUCH_OID).value
    except x509.ExtensionNotFound:
        return None
    raw = ext.value if isinstance(ext, x509.UnrecognizedExtension) else b""
    if len(raw) != 96:
        return None
    public, signature = raw[:32], raw[32:]
    return public if ed25519_verify(public, VOUCH_DOMAIN + _spki(cert), signature) else None


def read_peer_cert(path: Path | None, consensus_key: bytes, peer: str) -> bytes:
    """Peer `peer`'s certificate (PEM), refused unless `consensus_key` vouched for it."""
    if path is None:
        raise TlsError(f"peer {peer}: no tls_cert configured")
    cert, pem = _load_cert(path)
    if vouched_by(cert) != consensus_key:
        raise TlsError(
            f"{path}: not vouched for by {peer}'s consensus-msg-key (another node's "
            "certificate, or made for an older key?)"
        )
    return pem


def read_tls_identity(key_path: Path, cert_path: Path, signing_private: bytes) -> TlsIdentity:
    """Our TLS key (a private file: mode 0600) and certificate, checked to belong together
    and to our consensus key."""
    try:
        key_pem = read_private_file(key_path)
    except PrivateFileError as e:
        raise TlsError(str(e)) from e
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise TlsError(f"{key_path}: not an unencrypted PEM private key") from None
    cert, cert_pem = _load_cert(cert_path)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise TlsError(f"{cert_path}: not the certificate of {key_path}")
    if vouched_by(cert) != ed25519_public(signing_private):
        raise TlsError(f"{cert_path}: not vouched for by this node's key_file (regenerate it)")
    return TlsIdentity(key_pem, cert_pem)


class PeerCerts:
    """Which configured peer presented a certificate (as gRPC's auth context gives it)."""

    def __init__(self, certs: dict[str, bytes]) -> None:
        self._by_der = {_der(pem): name for name, pem in certs.items()}
        self._seen: dict[bytes, str | None] = {}
        self.bundle = b"".join(certs.values())

    def name_of_der(self, presented_der: bytes) -> str | None:
        """The same for a certificate as Python's `ssl` gives it (DER)."""
        return self._by_der.get(presented_der)

    def name_of(self, presented_pem: bytes) -> str | None:
        name = self._seen.get(presented_pem, "")
        if name == "":
            try:
                name = self._by_der.get(_der(presented_pem))
            except ValueError:
                name = None
            if len(self._seen) < 1024:  # only certificates that passed TLS get here
                self._seen[presented_pem] = name
        return name


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def default_paths(directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    d = Path(directory)
    return d / "tls.key", d / "tls.pem"
