"""mcnode.crypto: the Python face of the native crypto core and of `cryptography`.

- `ristretto`: `Scalar`, `RistrettoPoint`, domain-separated hash-to-scalar / hash-to-point,
  variable-time multiscalar multiplication for verifiers.
- `pedersen`: commitments `value * H + blinding * G` and aggregated range proofs.
- `signing`: Ed25519, X25519, HKDF, ChaCha20-Poly1305.
- `rng`: the one injectable randomness source (`system_random` reads `os.urandom`).

Rules: deterministic given inputs; no files, sockets, threads or clocks; Python never
reimplements what the dalek crates do.
"""

from mcnode.crypto.pedersen import (
    MAX_RANGE_PROOF_BYTES,
    MAX_RANGE_PROOF_VALUES,
    PEDERSEN_H,
    U64_MAX,
    commit,
    commitments_balance,
    fee_commitment,
    prove_range,
    verify_range,
    verify_range_batch,
)
from mcnode.crypto.ristretto import (
    BASEPOINT,
    IDENTITY,
    L,
    RistrettoPoint,
    Scalar,
    basepoint_mul,
    double_mul_basepoint_vartime,
    hash_to_point,
    hash_to_scalar,
    multiscalar_mul_vartime,
    point_sub,
    point_sum,
)
from mcnode.crypto.rng import RandomSource, SeededRandom, system_random

__all__ = [
    "BASEPOINT",
    "IDENTITY",
    "L",
    "MAX_RANGE_PROOF_BYTES",
    "MAX_RANGE_PROOF_VALUES",
    "PEDERSEN_H",
    "U64_MAX",
    "RandomSource",
    "RistrettoPoint",
    "Scalar",
    "SeededRandom",
    "basepoint_mul",
    "commit",
    "commitments_balance",
    "double_mul_basepoint_vartime",
    "fee_commitment",
    "hash_to_point",
    "hash_to_scalar",
    "multiscalar_mul_vartime",
    "point_sub",
    "point_sum",
    "prove_range",
    "system_random",
    "verify_range",
    "verify_range_batch",
]
