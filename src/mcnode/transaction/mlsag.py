"""MLSAG ring signatures over (one-time key, commitment difference), with key images.

For a ring of outputs (P_j, C_j) and a pseudo-output commitment C', the signer knows, at a
secret index pi, x with P_pi = x * G and z with C_pi - C' = z * G (same value, different
blinding). With Hp(P) = hash_to_point("key image", P) and key image I = x * Hp(P_pi):

    c_{j+1} = Hs("mlsag", msg, I, r0_j*G + c_j*P_j, r0_j*Hp(P_j) + c_j*I, r1_j*G + c_j*(C_j - C'))

and the signature is (c_0, [r0_j, r1_j], I). The same x always gives the same I whatever
the ring, which is how double spends are caught (linkability). Verifiers use the native
variable-time multiplications; the signer's secrets only meet constant-time ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mcnode import _native
from mcnode.crypto import (
    IDENTITY,
    L,
    RandomSource,
    RistrettoPoint,
    Scalar,
    basepoint_mul,
    double_mul_basepoint_vartime,
    hash_to_point,
    hash_to_scalar,
    multiscalar_mul_vartime,
    point_sub,
)
from mcnode.transaction.encoding import Reader, Writer
from mcnode.transaction.errors import DecodeError

DST_KEY_IMAGE = b"mcnode key image v1"
DST_MLSAG = b"mcnode mlsag v1"
#: Most ring members a signature is decoded for.
MAX_RING = 11


def key_image(onetime_private: Scalar) -> bytes:
    """I = x * Hp(x * G)."""
    p = basepoint_mul(onetime_private).encoding
    return (onetime_private * hash_to_point(DST_KEY_IMAGE, p)).encoding


@dataclass(frozen=True, slots=True)
class RingMLSAG:
    c_zero: bytes
    responses: tuple[bytes, ...]
    key_image: bytes

    def encode(self, w: Writer) -> None:
        w.fixed(self.c_zero, 32)
        w.count(len(self.responses), 2 * MAX_RING, width=1, what="responses")
        for r in self.responses:
            w.fixed(r, 32)
        w.fixed(self.key_image, 32)

    @classmethod
    def decode(cls, r: Reader) -> RingMLSAG:
        c_zero = r.fixed(32)
        n = r.count(2 * MAX_RING, width=1, what="responses")
        blob = r.fixed(32 * n)
        responses = tuple([blob[i : i + 32] for i in range(0, 32 * n, 32)])
        sig = cls(c_zero, responses, r.fixed(32))
        # Canonical scalars only, so a signature has exactly one encoding (the test of
        # `Scalar.from_bytes`, without making the Scalars: this runs 23 times per input).
        if any(int.from_bytes(s, "little") >= L for s in (c_zero, *responses)):
            raise DecodeError("ring signature: scalar is not canonical (not reduced mod l)")
        return sig


def _challenge(msg: bytes, image: bytes, l0: bytes, r0: bytes, l1: bytes) -> Scalar:
    return hash_to_scalar(DST_MLSAG, msg, image, l0, r0, l1)


def sign(
    msg: bytes,
    ring: Sequence[tuple[bytes, bytes]],
    real_index: int,
    onetime_private: Scalar,
    blinding_difference: Scalar,
    pseudo_output: bytes,
    rng: RandomSource,
) -> RingMLSAG:
    """Sign `msg` for ring [(P_j, C_j)] knowing x and z at `real_index` (see module doc)."""
    n = len(ring)
    if not 0 <= real_index < n:
        raise ValueError("real index outside the ring")
    target = ring[real_index][0]
    if basepoint_mul(onetime_private).encoding != target:
        raise ValueError("one-time private key does not match the real ring member")
    if point_sub(ring[real_index][1], pseudo_output) != basepoint_mul(blinding_difference).encoding:
        raise ValueError("pseudo-output does not commit to the real input's value")
    hp_real = hash_to_point(DST_KEY_IMAGE, target)
    image = (onetime_private * hp_real).encoding

    alpha0, alpha1 = Scalar.random(rng), Scalar.random(rng)
    challenges: list[Scalar] = [Scalar(0)] * n
    responses: list[Scalar] = [Scalar(0)] * (2 * n)
    j = (real_index + 1) % n
    challenges[j] = _challenge(
        msg,
        image,
        basepoint_mul(alpha0).encoding,
        (alpha0 * hp_real).encoding,
        basepoint_mul(alpha1).encoding,
    )
    while j != real_index:
        r0, r1 = Scalar.random(rng), Scalar.random(rng)
        responses[2 * j], responses[2 * j + 1] = r0, r1
        p, c_j = ring[j]
        c = challenges[j]
        challenges[(j + 1) % n] = _challenge(
            msg,
            image,
            double_mul_basepoint_vartime(c, p, r0),
            multiscalar_mul_vartime([r0, c], [hash_to_point(DST_KEY_IMAGE, p).encoding, image]),
            double_mul_basepoint_vartime(c, point_sub(c_j, pseudo_output), r1),
        )
        j = (j + 1) % n
    c_pi = challenges[real_index]
    responses[2 * real_index] = alpha0 - c_pi * onetime_private
    responses[2 * real_index + 1] = alpha1 - c_pi * blinding_difference
    return RingMLSAG(challenges[0].to_bytes(), tuple(r.to_bytes() for r in responses), image)


def verify(
    sig: RingMLSAG, msg: bytes, ring: Sequence[tuple[bytes, bytes]], pseudo_output: bytes
) -> bool:
    """True when `sig` is a valid MLSAG of `msg` over `ring` and `pseudo_output`.

    One native call (points decompressed once, no GIL held); `verify_reference` is the
    same check step by step in Python, kept as the specification the tests hold it to."""
    n = len(ring)
    if n == 0 or len(sig.responses) != 2 * n:
        return False
    return _native.mlsag_verify(
        DST_MLSAG,
        DST_KEY_IMAGE,
        msg,
        [p for p, _ in ring],
        [c for _, c in ring],
        pseudo_output,
        sig.c_zero,
        list(sig.responses),
        sig.key_image,
    )


def verify_reference(
    sig: RingMLSAG, msg: bytes, ring: Sequence[tuple[bytes, bytes]], pseudo_output: bytes
) -> bool:
    """True when `sig` is a valid MLSAG of `msg` over `ring` and `pseudo_output`."""
    n = len(ring)
    if n == 0 or len(sig.responses) != 2 * n:
        return False
    try:
        RistrettoPoint(sig.key_image)
        if sig.key_image == IDENTITY.encoding:
            return False
        c_zero = Scalar.from_bytes(sig.c_zero)
        responses = [Scalar.from_bytes(r) for r in sig.responses]
        c = c_zero
        for j, (p, c_j) in enumerate(ring):
            r0, r1 = responses[2 * j], responses[2 * j + 1]
            c = _challenge(
                msg,
                sig.key_image,
                double_mul_basepoint_vartime(c, p, r0),
                multiscalar_mul_vartime(
                    [r0, c], [hash_to_point(DST_KEY_IMAGE, p).encoding, sig.key_image]
                ),
                double_mul_basepoint_vartime(c, point_sub(c_j, pseudo_output), r1),
            )
    except ValueError:
        return False  # an invalid point or non-canonical scalar somewhere
    return c == c_zero
