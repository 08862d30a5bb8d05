"""The transaction types and their one canonical encoding.

    Tx = TxPrefix (inputs: rings with membership proofs, outputs, fee, tombstone block)
       + SignatureRctBulletproofs (one MLSAG per input, pseudo-output commitments,
         one aggregated range proof over pseudo-outputs then outputs)

Encoding (`mcnode.binary`): a version byte, then fields in declaration order, fixed-width
little-endian integers, u8 list counts and u16 byte-string lengths, each bounded (see the
MAX_* limits).
`Tx.from_bytes` rejects anything over a limit, truncated, or followed by trailing bytes,
so `from_bytes(to_bytes(tx)) == tx` and each Tx has one encoding. Points are not checked
here (that costs a square root each); validation checks them where it uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mcnode.crypto import MAX_RANGE_PROOF_BYTES
from mcnode.transaction.encoding import Reader, Writer
from mcnode.transaction.encoding import domain_hash as _digest
from mcnode.transaction.errors import DecodeError
from mcnode.transaction.membership import MembershipProof
from mcnode.transaction.mlsag import MAX_RING, RingMLSAG
from mcnode.transaction.txout import TxOut

TX_VERSION = 1
MAX_INPUTS = 16
MAX_OUTPUTS = 16
RING_SIZE = 11
#: Largest encoded Tx we will even try to decode.
MAX_TX_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class TxIn:
    """A ring of ledger outputs, one of them really spent, each with its membership proof."""

    ring: tuple[TxOut, ...]
    proofs: tuple[MembershipProof, ...]

    def encode(self, w: Writer) -> None:
        if len(self.ring) != len(self.proofs):
            raise ValueError("a ring needs exactly one membership proof per member")
        w.count(len(self.ring), MAX_RING, width=1, what="ring members")
        for tx_out, proof in zip(self.ring, self.proofs, strict=True):
            tx_out.encode(w)
            proof.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> TxIn:
        ring, proofs = [], []
        for _ in range(r.count(MAX_RING, width=1, what="ring members")):
            ring.append(TxOut.decode(r))
            proofs.append(MembershipProof.decode(r))
        return cls(tuple(ring), tuple(proofs))


@dataclass(frozen=True, slots=True)
class TxPrefix:
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    fee: int
    tombstone_block: int
    # The canonical encoding, when this prefix was decoded from a Tx's bytes (a cache, not
    # part of equality): the signing message hashes it, ~7 KB of rings and proofs.
    _encoding: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def encode(self, w: Writer) -> None:
        w.count(len(self.inputs), MAX_INPUTS, width=1, what="inputs")
        for tx_in in self.inputs:
            tx_in.encode(w)
        w.count(len(self.outputs), MAX_OUTPUTS, width=1, what="outputs")
        for tx_out in self.outputs:
            tx_out.encode(w)
        w.u64(self.fee)
        w.u64(self.tombstone_block)

    @classmethod
    def decode(cls, r: Reader) -> TxPrefix:
        n_inputs = r.count(MAX_INPUTS, width=1, what="inputs")
        inputs = tuple(TxIn.decode(r) for _ in range(n_inputs))
        n_outputs = r.count(MAX_OUTPUTS, width=1, what="outputs")
        outputs = tuple(TxOut.decode(r) for _ in range(n_outputs))
        return cls(inputs, outputs, r.u64(), r.u64())

    def to_bytes(self) -> bytes:
        if self._encoding is not None:
            return self._encoding
        w = Writer()
        self.encode(w)
        return w.getvalue()

    def hash(self) -> bytes:
        return _digest(b"mcnode tx prefix v1", self.to_bytes())


@dataclass(frozen=True, slots=True)
class SignatureRctBulletproofs:
    ring_signatures: tuple[RingMLSAG, ...]
    pseudo_output_commitments: tuple[bytes, ...]
    range_proof: bytes

    def encode(self, w: Writer) -> None:
        w.count(len(self.ring_signatures), MAX_INPUTS, width=1, what="ring signatures")
        for sig in self.ring_signatures:
            sig.encode(w)
        w.count(len(self.pseudo_output_commitments), MAX_INPUTS, width=1, what="pseudo-outputs")
        for c in self.pseudo_output_commitments:
            w.fixed(c, 32)
        w.var(self.range_proof, MAX_RANGE_PROOF_BYTES, width=2, what="range proof")

    @classmethod
    def decode(cls, r: Reader) -> SignatureRctBulletproofs:
        n_sigs = r.count(MAX_INPUTS, width=1, what="ring signatures")
        sigs = tuple(RingMLSAG.decode(r) for _ in range(n_sigs))
        n_pseudo = r.count(MAX_INPUTS, width=1, what="pseudo-outputs")
        pseudo = tuple(r.fixed(32) for _ in range(n_pseudo))
        return cls(sigs, pseudo, r.var(MAX_RANGE_PROOF_BYTES, width=2, what="range proof"))


@dataclass(frozen=True, slots=True)
class Tx:
    prefix: TxPrefix
    signature: SignatureRctBulletproofs
    # The canonical encoding and the hash, computed once: a 1-in/2-out tx is ~7 KB of
    # rings and proofs, and a validator asks for its bytes or hash several times (relay,
    # pool, block). Caches only: not part of equality.
    _encoding: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _hash: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def to_bytes(self) -> bytes:
        if self._encoding is None:
            w = Writer()
            w.u8(TX_VERSION)
            self.prefix.encode(w)
            self.signature.encode(w)
            object.__setattr__(self, "_encoding", w.getvalue())
        assert self._encoding is not None
        return self._encoding

    @classmethod
    def from_bytes(cls, data: bytes) -> Tx:
        if len(data) > MAX_TX_BYTES:
            raise DecodeError(f"transaction of {len(data)} bytes is over {MAX_TX_BYTES}")
        r = Reader(data)
        version = r.u8()
        if version != TX_VERSION:
            raise DecodeError(f"unknown transaction version {version}")
        prefix = TxPrefix.decode(r)
        prefix_end = r.offset
        tx = cls(prefix, SignatureRctBulletproofs.decode(r))
        r.finish()
        # One encoding per Tx (module doc), so the bytes it came from are its encoding,
        # and the prefix's are the part it was decoded from.
        data = bytes(data)
        object.__setattr__(tx, "_encoding", data)
        object.__setattr__(prefix, "_encoding", data[1:prefix_end])
        return tx

    def tx_hash(self) -> bytes:
        """32-byte identity of the transaction: a hash of its canonical encoding."""
        if self._hash is None:
            object.__setattr__(self, "_hash", _digest(b"mcnode tx v1", self.to_bytes()))
        assert self._hash is not None
        return self._hash

    @property
    def key_images(self) -> tuple[bytes, ...]:
        return tuple(s.key_image for s in self.signature.ring_signatures)

    @property
    def output_public_keys(self) -> tuple[bytes, ...]:
        return tuple(o.public_key for o in self.prefix.outputs)


def signing_message(
    prefix: TxPrefix, pseudo_outputs: tuple[bytes, ...], range_proof: bytes
) -> bytes:
    """What every MLSAG of a Tx signs: the prefix, the pseudo-outputs and the range proof,
    so that none of them can be changed without breaking every signature."""
    return _digest(b"mcnode mlsag message v1", prefix.hash(), *pseudo_outputs, range_proof)
