"""mcnode.crypto: known answers, group laws, commitments, range proofs, Ed25519/X25519."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcnode import _native
from mcnode.crypto import (
    BASEPOINT,
    IDENTITY,
    PEDERSEN_H,
    L,
    RistrettoPoint,
    Scalar,
    SeededRandom,
    basepoint_mul,
    commit,
    commitments_balance,
    fee_commitment,
    hash_to_point,
    hash_to_scalar,
    multiscalar_mul_vartime,
    point_sum,
    prove_range,
    verify_range,
    verify_range_batch,
)
from mcnode.crypto.signing import (
    aead_open,
    aead_seal,
    ed25519_keypair,
    ed25519_public,
    ed25519_sign,
    ed25519_sign_reference,
    ed25519_verify,
    x25519_exchange,
    x25519_keypair,
)

# RFC 9496 appendix A.1: encodings of 0*B .. 4*B.
RFC9496_MULTIPLES = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76",
    "6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919",
    "94741f5d5d52755ece4f23f044ee27d5d1ea1e2bd196b462166b16152a9d0259",
    "da80862773358b466ffadfe0b3293ab3d9fd53c5ea6c955358f568322daf6a57",
]


@pytest.mark.parametrize("k", range(5))
def test_basepoint_multiples_match_rfc9496(k: int) -> None:
    assert basepoint_mul(Scalar(k)).encoding.hex() == RFC9496_MULTIPLES[k]


def test_pedersen_h_is_the_documented_hash_of_g() -> None:
    # H = hash_to_point(b"mcnode pedersen H v1", G): pinned, it is part of consensus.
    assert hash_to_point(b"mcnode pedersen H v1", BASEPOINT.encoding) == PEDERSEN_H
    assert PEDERSEN_H.encoding.hex() == (
        "d2d8be31dfd743168c045d3d1dca19547a29c1b2a591a2a19daa4cdcbde07b3c"
    )


def test_hash_to_scalar_is_domain_separated_and_pinned() -> None:
    s = hash_to_scalar(b"tag", b"ab", b"c")
    assert s != hash_to_scalar(b"tag", b"a", b"bc")
    assert s != hash_to_scalar(b"other", b"ab", b"c")
    assert s == hash_to_scalar(b"tag", b"ab", b"c")
    # The documented framing: len(dst) || dst || (len(part) as u32 LE || part)*, SHA-512 mod l.
    framed = b"\x03tag" + b"\x02\x00\x00\x00ab" + b"\x01\x00\x00\x00c"
    assert s.value == int.from_bytes(hashlib.sha512(framed).digest(), "little") % L


def test_scalar_encoding_is_canonical() -> None:
    assert Scalar.from_bytes((L - 1).to_bytes(32, "little")).value == L - 1
    with pytest.raises(ValueError):
        Scalar.from_bytes(L.to_bytes(32, "little"))
    with pytest.raises(ValueError):
        Scalar.from_bytes(b"\x01" * 31)
    with pytest.raises(ValueError):
        _native.basepoint_mul(L.to_bytes(32, "little"))


def test_scalar_field_laws_seed_1() -> None:
    rng = SeededRandom(1)
    a, b = Scalar.random(rng), Scalar.random(rng)
    assert (a + b) - b == a
    assert a * a.invert() == Scalar(1)
    assert -a + a == Scalar(0)
    with pytest.raises(ZeroDivisionError):
        Scalar(0).invert()


def test_group_laws_seed_2() -> None:
    rng = SeededRandom(2)
    a, b = Scalar.random(rng), Scalar.random(rng)
    pa, pb = basepoint_mul(a), basepoint_mul(b)
    assert pa + pb == basepoint_mul(a + b)
    assert pa - pa == IDENTITY
    assert b * pa == a * pb
    assert (
        multiscalar_mul_vartime([a, b], [BASEPOINT.encoding, PEDERSEN_H.encoding])
        == (basepoint_mul(a) + b * PEDERSEN_H).encoding
    )
    assert point_sum([pa.encoding, pb.encoding]) == (pa + pb).encoding
    assert point_sum([]) == IDENTITY.encoding


def test_invalid_points_are_value_errors() -> None:
    with pytest.raises(ValueError):
        RistrettoPoint(b"\xff" * 32)
    with pytest.raises(ValueError):
        RistrettoPoint(b"\x00" * 31)
    with pytest.raises(ValueError):
        _native.point_add(b"\xff" * 32, BASEPOINT.encoding)
    with pytest.raises(ValueError):
        _native.multiscalar_mul_vartime([bytes(32)], [])


def test_commitments_are_homomorphic_seed_3() -> None:
    rng = SeededRandom(3)
    r1, r2 = Scalar.random(rng), Scalar.random(rng)
    assert commit(5, r1) + commit(7, r2) == commit(12, r1 + r2)
    assert commit(5, Scalar(0)) == Scalar(5) * PEDERSEN_H
    with pytest.raises(ValueError):
        commit(2**64, r1)


def test_commitments_balance_agrees_with_point_sums_seed_8() -> None:
    rng = SeededRandom(8)
    r1, r2, r3 = Scalar.random(rng), Scalar.random(rng), Scalar.random(rng)
    ins = [commit(70, r1).encoding, commit(30, r2 + r3).encoding]
    outs = [commit(55, r1 + r2).encoding, commit(40, r3).encoding]
    # The reference: the sums of encodings, with the fee committed with zero blinding.
    assert point_sum(ins) == point_sum([*outs, fee_commitment(5)])
    assert commitments_balance(ins, outs, 5)
    assert not commitments_balance(ins, outs, 4)
    assert not commitments_balance(ins, outs[:1], 5)
    assert not commitments_balance(ins[::-1][:1], outs, 5)
    biggest = commit(2**64 - 1, r1).encoding
    assert commitments_balance([biggest], [(r1 * BASEPOINT).encoding], 2**64 - 1)
    with pytest.raises(ValueError, match="output 1"):
        commitments_balance(ins, [outs[0], b"\xff" * 32], 5)
    with pytest.raises(ValueError, match="input 0"):
        commitments_balance([bytes(31)], outs, 5)
    with pytest.raises(ValueError):
        commitments_balance(ins, outs, 2**64)


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_range_proof_round_trip_seed_4(count: int) -> None:
    rng = SeededRandom(4)
    values = [2**64 - 1, 0, 12345, 1, 99][:count]
    blindings = [Scalar.random(rng) for _ in values]
    proof, commitments = prove_range(values, blindings, rng)
    assert commitments == [commit(v, b).encoding for v, b in zip(values, blindings, strict=True)]
    assert verify_range(proof, commitments)
    # A commitment swapped for another value's, or a flipped proof byte, fails.
    other = commit(values[0] + 1 if values[0] < 2**64 - 1 else 0, blindings[0]).encoding
    assert not verify_range(proof, [other, *commitments[1:]])
    assert not verify_range(proof[:-1] + bytes([proof[-1] ^ 1]), commitments)
    assert not verify_range(b"", commitments)


def test_range_proof_is_deterministic_given_rng() -> None:
    blinding = [Scalar(7)]
    assert prove_range([1], blinding, SeededRandom(5)) == prove_range(
        [1], blinding, SeededRandom(5)
    )


def test_range_proof_rejects_bad_argument_lists() -> None:
    with pytest.raises(ValueError):
        verify_range(b"", [])
    with pytest.raises(ValueError):
        verify_range(b"", [bytes(32)] * 33)
    with pytest.raises(ValueError):
        prove_range([1, 2], [Scalar(1)], SeededRandom(6))


def test_ed25519_and_x25519_seed_7() -> None:
    rng = SeededRandom(7)
    sk, pk = ed25519_keypair(rng)
    sig = ed25519_sign(sk, b"block 1")
    assert ed25519_verify(pk, b"block 1", sig)
    assert not ed25519_verify(pk, b"block 2", sig)
    assert not ed25519_verify(b"\x00" * 3, b"block 1", sig)
    (a, pa), (b, pb) = x25519_keypair(rng), x25519_keypair(rng)
    assert x25519_exchange(a, pb) == x25519_exchange(b, pa)
    key = bytes(32)
    box = aead_seal(key, bytes(12), b"memo", b"aad")
    assert aead_open(key, bytes(12), box, b"aad") == b"memo"
    assert aead_open(key, bytes(12), box, b"other") is None


def test_ed25519_rfc8032_vector_1() -> None:
    """RFC 8032 section 7.1, TEST 1: the checker (dalek) accepts the published signature
    and both signers (dalek, and OpenSSL's as the reference) make it."""
    sk = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    pk = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    sig = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert ed25519_sign(sk, b"") == sig == ed25519_sign_reference(sk, b"")
    assert ed25519_public(sk) == pk
    assert ed25519_verify(pk, b"", sig)
    assert not ed25519_verify(pk, b"\x00", sig)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=600))
def test_ed25519_signatures_are_openssls_byte_for_byte(seed: bytes, msg: bytes) -> None:
    """Signing moved from OpenSSL to dalek (cold-cache cost: bench/RESULTS.md). RFC 8032
    signatures are deterministic, so for any key and message both must make the same
    bytes, and the public key must be the same too."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    assert ed25519_sign(seed, msg) == ed25519_sign_reference(seed, msg)
    openssl_public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    assert ed25519_public(seed) == openssl_public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_ed25519_signing_refuses_a_key_of_the_wrong_size() -> None:
    for bad in (b"", bytes(31), bytes(33)):
        with pytest.raises(ValueError, match="32 bytes"):
            ed25519_sign(bad, b"m")
        with pytest.raises(ValueError, match="32 bytes"):
            ed25519_public(bad)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300), st.data())
def test_ed25519_checks_agree_with_openssl(seed: bytes, msg: bytes, data: st.DataObject) -> None:
    """Our checker (dalek, strict) and OpenSSL's (`cryptography`) agree on honest signatures
    and on every one-bit change of signature, message or key (small-order keys, where the
    strict checker alone refuses, do not come from real key pairs)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    def openssl(pk: bytes, m: bytes, s: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(pk).verify(s, m)
        except (InvalidSignature, ValueError):
            return False
        return True

    pk = ed25519_public(seed)
    sig = ed25519_sign(seed, msg)
    assert ed25519_verify(pk, msg, sig) and openssl(pk, msg, sig)
    which = data.draw(st.sampled_from(["sig", "msg", "key"]))
    target = {"sig": sig, "msg": msg or b"\x00", "key": pk}[which]
    bit = data.draw(st.integers(0, 8 * len(target) - 1))
    flipped = bytearray(target)
    flipped[bit // 8] ^= 1 << (bit % 8)
    args = {"sig": (pk, msg, bytes(flipped)), "msg": (pk, bytes(flipped), sig)}.get(
        which, (bytes(flipped), msg, sig)
    )
    assert ed25519_verify(*args) == openssl(*args) is False
    assert not ed25519_verify(pk, msg, sig[:63]) and not ed25519_verify(pk[:31], msg, sig)


# -- batch verification of range proofs (native/src/range_batch.rs) ------------------------

_PROOFS: dict[tuple[int, int], tuple[bytes, list[bytes]]] = {}


def _proof(seed: int, count: int) -> tuple[bytes, list[bytes]]:
    """A valid proof over `count` values (cached: proving costs ~10 ms)."""
    if (seed, count) not in _PROOFS:
        rng = SeededRandom(1000 + seed)
        values = [int.from_bytes(rng(8), "little") >> (seed % 64) for _ in range(count)]
        _PROOFS[seed, count] = prove_range(values, [Scalar.random(rng) for _ in values], rng)
    return _PROOFS[seed, count]


def _mutations(proof: bytes, commitments: list[bytes]) -> list[tuple[bytes, list[bytes]]]:
    """Ways to break a statement: a flipped bit anywhere in the proof (points, scalars,
    inner-product part), a commitment changed or swapped, one commitment too few."""
    out = []
    for at in (0, 40, 100, 130, 4 * 32 + 3, 6 * 32 + 31, len(proof) - 40, len(proof) - 1):
        flipped = bytearray(proof)
        flipped[at] ^= 1 << (at % 8)
        out.append((bytes(flipped), commitments))
    out.append((proof, [commit(1, Scalar(2)).encoding, *commitments[1:]]))
    if len(commitments) > 1:
        out.append((proof, [commitments[1], commitments[0], *commitments[2:]]))
        out.append((proof, commitments[:-1]))
    out.append((proof[:-32], commitments))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(1, 5)), min_size=2, max_size=6),
    st.data(),
)
def test_batch_verification_agrees_with_one_by_one(
    shapes: list[tuple[int, int]], data: st.DataObject
) -> None:
    statements = [_proof(seed, count) for seed, count in shapes]
    assert verify_range_batch(statements)
    # Break one statement of the batch: the batch fails exactly when that one alone does.
    victim = data.draw(st.integers(0, len(statements) - 1))
    broken = data.draw(st.sampled_from(_mutations(*statements[victim])))
    batch = [*statements[:victim], broken, *statements[victim + 1 :]]
    assert verify_range_batch(batch) == verify_range(*broken)
    assert not verify_range(*broken)
    # verify_range is the batch verifier on one proof: the crate's own verifier agrees.
    assert not _native.range_proof_verify(*broken)
    assert all(_native.range_proof_verify(*s) for s in statements)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 3), st.integers(1, 5), st.data())
def test_our_verifier_agrees_with_the_crates_on_any_flipped_bit(
    seed: int, count: int, data: st.DataObject
) -> None:
    """`verify_range` (our batch verifier, on curve25519-dalek 5) against the
    `bulletproofs` crate's own verifier, on a proof with any one bit flipped."""
    proof, commitments = _proof(seed, count)
    at = data.draw(st.integers(0, 8 * len(proof) - 1))
    flipped = bytearray(proof)
    flipped[at // 8] ^= 1 << (at % 8)
    ours = verify_range(bytes(flipped), commitments)
    assert ours == _native.range_proof_verify(bytes(flipped), commitments)
    assert not ours


def test_batch_of_one_and_of_none() -> None:
    proof, commitments = _proof(0, 3)
    assert verify_range_batch([(proof, commitments)])
    assert not verify_range_batch([(proof, commitments[::-1])])
    assert verify_range_batch([])


def test_batch_rejects_bad_argument_lists_like_single_verification() -> None:
    good = _proof(1, 2)
    for bad in [(b"", []), (b"", [bytes(32)] * 33), (good[0], [bytes(31), good[1][1]])]:
        with pytest.raises(ValueError):
            verify_range_batch([good, bad])
    with pytest.raises(ValueError):
        _native.range_proofs_verify_batch([good] * 4097)


def test_proofs_swapped_between_statements_fail_in_a_batch() -> None:
    (p1, c1), (p2, c2) = _proof(2, 2), _proof(3, 2)
    assert verify_range_batch([(p1, c1), (p2, c2)])
    assert not verify_range_batch([(p1, c2), (p2, c1)])
    assert not verify_range_batch([(p1, c1), (p1, c1), (p2, c1)])


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split()}


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the SIMD backends are x86_64's")
def test_the_verifiers_run_on_the_fastest_backend_this_cpu_has() -> None:
    """The build's `--cfg curve25519_dalek_backend="avx512"` (.cargo/config.toml) is what
    lets curve25519-dalek 5 use AVX-512 IFMA, ~2.5x faster here than AVX2: a build that
    lost it would still pass every other test."""
    flags = _cpu_flags()
    if {"avx512ifma", "avx512vl"} <= flags:
        expected = "avx512ifma"
    elif "avx2" in flags:
        expected = "avx2"
    else:
        expected = "serial"
    assert _native.curve_backend() == expected
