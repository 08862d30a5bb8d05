"""A simulated quoting enclave: SGX ECDSA quotes (version 3) signed under a `SimPki`.

What Intel's quoting enclave (QE) does on hardware, done here in plain Python, in the
same bytes:
- it holds an ECDSA P-256 *attestation key*, made when it starts (one per QE);
- its own report (the QE report) binds that key: report data = SHA-256(attestation key
  || QE auth data) || 32 zero bytes; the platform's PCK key signs the QE report (on
  hardware the PCE does, after checking the report came from the QE);
- for an enclave's report it writes header || report body and signs them with the
  attestation key, and appends the QE report, its signature, the QE auth data and the
  PCK chain (certification data type 5).

On hardware the CPU vouches that the report body is the enclave's: here the caller just
states MRENCLAVE, MRSIGNER, ISV product and SVN and report data, and nothing checks them.
So a simulated quote proves only that its maker held this PKI's PCK key; the root's name
says so, and verifiers accept it only where a policy trusts that root.

DEBUG (ATTRIBUTES.FLAGS bit 1) is clear by default, though a simulated enclave has no
hardware protection (its host can read all its memory, as a debugger can a DEBUG
enclave's): the verifier we pin, dcap-qvl 0.7.0, refuses every DEBUG enclave and offers
no option to allow one, so DEBUG quotes could never take the real verifier path. What
marks simulated evidence is its root, which no hardware policy trusts. `debug=True` makes
the refused kind, for tests of that refusal.

Rules of this file: no clock (the collateral's time is an argument), no I/O; randomness
only from the `RandomSource` given (the attestation key), every signature deterministic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from mcnode.attest.quote import (
    CERT_TYPE_PCK_CHAIN,
    FLAG_DEBUG,
    FLAG_INIT,
    FLAG_MODE64BIT,
    Attributes,
    CertificationData,
    Quote,
    QuoteHeader,
    QuoteSignature,
    ReportBody,
)
from mcnode.attest.sim_pki import (
    DEFAULT_COLLATERAL_SECONDS,
    SIM_QE,
    SimPki,
    ecdsa_sign_raw,
    p256_key,
    raw_public_key,
)
from mcnode.crypto.rng import RandomSource, system_random

#: QE auth data: 32 bytes, as dcap-qvl requires; Intel's QE writes 0x00..0x1f by default.
QE_AUTH_DATA = bytes(range(32))
#: XFRM of simulated enclaves: x87 and SSE state, the least an enclave runs with.
DEFAULT_XFRM = 0x03


def enclave_attributes(debug: bool, xfrm: int = DEFAULT_XFRM) -> Attributes:
    """ATTRIBUTES of an initialised 64-bit enclave, DEBUG set when asked."""
    flags = FLAG_INIT | FLAG_MODE64BIT | (FLAG_DEBUG if debug else 0)
    return Attributes(flags=flags, xfrm=xfrm)


class SimQuotingEnclave:
    """The simulated QE of one platform of `pki`, with its own attestation key."""

    def __init__(self, pki: SimPki, rng: RandomSource = system_random) -> None:
        self._pki = pki
        self._attestation_key = p256_key(rng)
        self.attestation_public_key = raw_public_key(self._attestation_key.public_key())
        qe_report_data = hashlib.sha256(self.attestation_public_key + QE_AUTH_DATA).digest()
        self.qe_report = ReportBody(
            mr_enclave=SIM_QE.mr_enclave,
            mr_signer=SIM_QE.mr_signer,
            isv_prod_id=SIM_QE.isv_prod_id,
            isv_svn=SIM_QE.isv_svn,
            report_data=qe_report_data + bytes(32),
            attributes=SIM_QE.attributes,
            cpu_svn=pki.platform.cpu_svn,
            misc_select=SIM_QE.misc_select,
        )
        # The PCK key certifies the attestation key once, through the QE report.
        self._qe_report_signature = ecdsa_sign_raw(pki.pck_key, self.qe_report.to_bytes())
        self._certification = CertificationData(CERT_TYPE_PCK_CHAIN, pki.pck_chain_pem())
        self._header = QuoteHeader(qe_svn=SIM_QE.isv_svn, pce_svn=pki.platform.pce_svn)

    @property
    def pki(self) -> SimPki:
        return self._pki

    def quote_value(
        self,
        mrenclave: bytes,
        mrsigner: bytes,
        isv_prod_id: int,
        isv_svn: int,
        report_data: bytes,
        *,
        debug: bool = False,
        attributes: Attributes | None = None,
        cpu_svn: bytes | None = None,
        misc_select: int = 0,
    ) -> Quote:
        """The quote of an enclave with this identity and these 64 bytes of report data.
        `attributes`, when given, replaces the ones `debug` would choose; `cpu_svn`
        defaults to the platform's."""
        if len(report_data) != 64:
            raise ValueError(f"report_data must be 64 bytes, got {len(report_data)}")
        body = ReportBody(
            mr_enclave=mrenclave,
            mr_signer=mrsigner,
            isv_prod_id=isv_prod_id,
            isv_svn=isv_svn,
            report_data=report_data,
            attributes=enclave_attributes(debug) if attributes is None else attributes,
            cpu_svn=self._pki.platform.cpu_svn if cpu_svn is None else cpu_svn,
            misc_select=misc_select,
        )
        signed = self._header.to_bytes() + body.to_bytes()
        signature = QuoteSignature(
            ecdsa_signature=ecdsa_sign_raw(self._attestation_key, signed),
            attestation_key=self.attestation_public_key,
            qe_report=self.qe_report,
            qe_report_signature=self._qe_report_signature,
            qe_auth_data=QE_AUTH_DATA,
            certification_data=self._certification,
        )
        return Quote(header=self._header, report_body=body, signature=signature)

    def quote(
        self,
        mrenclave: bytes,
        mrsigner: bytes,
        isv_prod_id: int,
        isv_svn: int,
        report_data: bytes,
        *,
        debug: bool = False,
        attributes: Attributes | None = None,
        cpu_svn: bytes | None = None,
        misc_select: int = 0,
    ) -> bytes:
        """`quote_value(...)` as the bytes verifiers take."""
        return self.quote_value(
            mrenclave,
            mrsigner,
            isv_prod_id,
            isv_svn,
            report_data,
            debug=debug,
            attributes=attributes,
            cpu_svn=cpu_svn,
            misc_select=misc_select,
        ).to_bytes()

    def collateral(
        self,
        now: int,
        valid_seconds: int = DEFAULT_COLLATERAL_SECONDS,
        *,
        tcb_status: str = "UpToDate",
        advisory_ids: Sequence[str] = (),
    ) -> bytes:
        """The PKI's collateral (JSON) for this QE's quotes, valid from `now`."""
        return self._pki.collateral(
            now, valid_seconds, tcb_status=tcb_status, advisory_ids=advisory_ids
        )
