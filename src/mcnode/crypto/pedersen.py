"""Pedersen commitments and aggregated Bulletproof range proofs over them.

A commitment to `value` with blinding `r` is `value * H + r * G`, where G is the
Ristretto255 generator and H is fixed as

    H = hash_to_point(b"mcnode pedersen H v1", encoding(G))

(see `hash_to_point`), so nobody knows log_G(H) and a commitment cannot be opened to two
values. The constants and the proving live in `mcnode._native` (the `bulletproofs` crate,
64-bit values, merlin transcript label b"mcnode range proof v1").
"""

from __future__ import annotations

from collections.abc import Sequence

from mcnode import _native
from mcnode.crypto.ristretto import RistrettoPoint, Scalar
from mcnode.crypto.rng import RandomSource

#: The value generator H (see the module docstring for its definition).
PEDERSEN_H = RistrettoPoint._trusted(_native.pedersen_h())

#: Most values one aggregated range proof covers.
MAX_RANGE_PROOF_VALUES = 32
#: Largest encoded range proof (32 values of 64 bits: 32 * (9 + 2 * log2(2048)) bytes).
MAX_RANGE_PROOF_BYTES = 992
U64_MAX = 2**64 - 1


def commit(value: int, blinding: Scalar) -> RistrettoPoint:
    """value * H + blinding * G, constant time."""
    if not 0 <= value <= U64_MAX:
        raise ValueError("committed value must fit in 64 bits")
    return RistrettoPoint._trusted(_native.pedersen_commit(value, blinding.to_bytes()))


def fee_commitment(fee: int) -> bytes:
    """fee * H: the commitment to a public value with zero blinding."""
    return commit(fee, Scalar(0)).encoding


def commitments_balance(inputs: Sequence[bytes], outputs: Sequence[bytes], fee: int) -> bool:
    """True when sum(inputs) == sum(outputs) + fee * H (`fee_commitment(fee)`): additions
    and one fixed-base multiplication in native code. ValueError naming the first input or
    output that is not a valid point; `fee` must fit in 64 bits."""
    if not 0 <= fee <= U64_MAX:
        raise ValueError("fee must fit in 64 bits")
    return _native.commitments_balance(list(inputs), list(outputs), fee)


def prove_range(
    values: Sequence[int], blindings: Sequence[Scalar], rng: RandomSource
) -> tuple[bytes, list[bytes]]:
    """One aggregated proof that each value is in [0, 2^64); returns (proof, commitments)."""
    proof, commitments = _native.range_proof_prove(
        list(values), [b.to_bytes() for b in blindings], rng(32)
    )
    return proof, commitments


def verify_range(proof: bytes, commitments: Sequence[bytes]) -> bool:
    """True when `proof` shows every commitment holds a 64-bit value.

    ValueError on a malformed argument list (wrong sizes, 0 or more than 32 commitments);
    False for any proof or commitment that does not check out. Checked by the batch
    verifier as a batch of one (`range_batch.rs`, on curve25519-dalek 5: 2-3x faster than
    the `bulletproofs` crate's own verifier here, which the tests hold it to).
    """
    return _native.range_proofs_verify_batch([(proof, list(commitments))])


def verify_range_batch(items: Sequence[tuple[bytes, Sequence[bytes]]]) -> bool:
    """True when every (proof, commitments) pair would pass `verify_range`; False when at
    least one would not (it does not say which: check them one by one to learn that).

    Many proofs cost one multiscalar multiplication in which the generators every proof
    shares appear once (`range_batch.rs` in `mcnode._native`; bench/RESULTS.md has the
    cost per proof by batch size). ValueError as `verify_range` raises it, for any pair.
    """
    return _native.range_proofs_verify_batch([(p, list(c)) for p, c in items])
