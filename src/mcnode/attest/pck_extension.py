"""The SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1): what Intel's
certificate says about the platform whose PCK key it certifies, encoded as DER.

Layout (Intel, "SGX PCK Certificate and CRL Profile"), every entry a SEQUENCE { OID,
value }, in this order:

    .1 PPID        OCTET STRING (16)       platform provisioning id
    .2 TCB         SEQUENCE of 18 entries:
         .2.1 .. .2.16  INTEGER            the 16 TCB component SVNs
         .2.17          INTEGER            PCESVN
         .2.18          OCTET STRING (16)  CPUSVN
    .3 PCE-ID      OCTET STRING (2)
    .4 FMSPC       OCTET STRING (6)        family, model, stepping, platform, SKU
    .5 SGX type    ENUMERATED              0 Standard, 1 Scalable, 2 Scalable with integrity

dcap-qvl reads CPUSVN, PCESVN and FMSPC from here and matches them against TCB info. Here
the 16 component SVNs are CPUSVN's 16 bytes, as in Intel's certificates (a test holds the
encoding to a real one, byte for byte). Processor-CA certificates stop at the SGX type;
Platform-CA ones may add entries (platform instance id, configuration) that we never write.

`cryptography` builds the certificate around this value (as an `UnrecognizedExtension`)
but has no encoder for an extension's own ASN.1, so a tiny DER encoder lives here: the
five primitives this layout needs, nothing else. No parser: what we wrote we compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
_PPID, _TCB, _PCEID, _FMSPC, _SGX_TYPE = (f"{SGX_EXTENSION_OID}.{i}" for i in range(1, 6))
_PCESVN, _CPUSVN = f"{_TCB}.17", f"{_TCB}.18"

_OCTET_STRING, _INTEGER, _ENUMERATED, _OID, _SEQUENCE = 0x04, 0x02, 0x0A, 0x06, 0x30


@dataclass(frozen=True)
class PckExtension:
    """The platform a PCK certificate describes."""

    ppid: bytes
    fmspc: bytes
    cpu_svn: bytes
    pce_svn: int
    pce_id: bytes
    sgx_type: int = 0  # Standard

    def __post_init__(self) -> None:
        for name, size in (("ppid", 16), ("fmspc", 6), ("cpu_svn", 16), ("pce_id", 2)):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != size:
                raise ValueError(f"{name} must be {size} bytes")
        if not 0 <= self.pce_svn <= 0xFFFF:
            raise ValueError(f"pce_svn must fit in 16 bits, got {self.pce_svn}")
        if self.sgx_type not in (0, 1, 2):
            raise ValueError(f"sgx_type must be 0, 1 or 2, got {self.sgx_type}")

    def to_der(self) -> bytes:
        """The extension's DER value (what goes inside the extension's OCTET STRING)."""
        tcb = [_entry(f"{_TCB}.{i + 1}", _integer(svn)) for i, svn in enumerate(self.cpu_svn)]
        tcb.append(_entry(_PCESVN, _integer(self.pce_svn)))
        tcb.append(_entry(_CPUSVN, _tlv(_OCTET_STRING, self.cpu_svn)))
        return _sequence(
            _entry(_PPID, _tlv(_OCTET_STRING, self.ppid)),
            _entry(_TCB, _sequence(*tcb)),
            _entry(_PCEID, _tlv(_OCTET_STRING, self.pce_id)),
            _entry(_FMSPC, _tlv(_OCTET_STRING, self.fmspc)),
            _entry(_SGX_TYPE, _tlv(_ENUMERATED, _unsigned(self.sgx_type))),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ppid": self.ppid.hex(),
            "fmspc": self.fmspc.hex(),
            "cpu_svn": self.cpu_svn.hex(),
            "pce_svn": self.pce_svn,
            "pce_id": self.pce_id.hex(),
            "sgx_type": self.sgx_type,
        }

    @classmethod
    def from_json(cls, doc: Any) -> PckExtension:
        """The value `to_json` wrote; `ValueError` (one line) for anything else."""
        try:
            return cls(
                ppid=bytes.fromhex(doc["ppid"]),
                fmspc=bytes.fromhex(doc["fmspc"]),
                cpu_svn=bytes.fromhex(doc["cpu_svn"]),
                pce_svn=int(doc["pce_svn"]),
                pce_id=bytes.fromhex(doc["pce_id"]),
                sgx_type=int(doc["sgx_type"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"bad PCK extension: {e}") from None


def _tlv(tag: int, content: bytes) -> bytes:
    """Tag, definite length (short form below 128, long form above), content."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _sequence(*items: bytes) -> bytes:
    return _tlv(_SEQUENCE, b"".join(items))


def _unsigned(n: int) -> bytes:
    """Two's-complement content of a non-negative integer: minimal, with a leading zero
    byte when the top bit would otherwise read as a sign (255 -> 00 FF)."""
    if n < 0:
        raise ValueError("only non-negative integers")
    return n.to_bytes(n.bit_length() // 8 + 1, "big")


def _integer(n: int) -> bytes:
    return _tlv(_INTEGER, _unsigned(n))


def _oid(dotted: str) -> bytes:
    """First two arcs in one byte (40 * a + b), each further arc base 128, high bit set
    on every byte but its last."""
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return _tlv(_OID, bytes(body))


def _entry(oid: str, value: bytes) -> bytes:
    return _sequence(_oid(oid), value)
