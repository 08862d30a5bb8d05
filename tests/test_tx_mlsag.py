"""MLSAG: sign/verify, tamper rejection, linkability of key images."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcnode.crypto import IDENTITY, Scalar, SeededRandom, basepoint_mul, commit
from mcnode.transaction import mlsag


def _ring(seed: int, size: int = 11, real: int = 4):
    rng = SeededRandom(seed)
    x, value, blinding = Scalar.random(rng), 42, Scalar.random(rng)
    ring = [
        (basepoint_mul(Scalar.random(rng)).encoding, commit(7, Scalar.random(rng)).encoding)
        for _ in range(size)
    ]
    ring[real] = (basepoint_mul(x).encoding, commit(value, blinding).encoding)
    pseudo_blinding = Scalar.random(rng)
    pseudo = commit(value, pseudo_blinding).encoding
    return rng, ring, x, blinding - pseudo_blinding, pseudo


@pytest.mark.parametrize("real", [0, 4, 10])
def test_sign_then_verify_seed_11(real: int) -> None:
    rng, ring, x, z, pseudo = _ring(11, real=real)
    sig = mlsag.sign(b"m" * 32, ring, real, x, z, pseudo, rng)
    assert mlsag.verify(sig, b"m" * 32, ring, pseudo)
    assert sig.key_image == mlsag.key_image(x)
    assert not mlsag.verify(sig, b"n" * 32, ring, pseudo)
    assert not mlsag.verify(sig, b"m" * 32, ring[::-1], pseudo)
    assert not mlsag.verify(sig, b"m" * 32, ring, commit(42, Scalar(1)).encoding)
    assert not mlsag.verify(sig, b"m" * 32, ring[:10], pseudo)


def test_every_tampered_scalar_fails_seed_12() -> None:
    rng, ring, x, z, pseudo = _ring(12)
    sig = mlsag.sign(b"m", ring, 4, x, z, pseudo, rng)
    for i in range(len(sig.responses)):
        bad = list(sig.responses)
        bad[i] = (Scalar.from_bytes(bad[i]) + Scalar(1)).to_bytes()
        assert not mlsag.verify(
            mlsag.RingMLSAG(sig.c_zero, tuple(bad), sig.key_image), b"m", ring, pseudo
        )
    c = (Scalar.from_bytes(sig.c_zero) + Scalar(1)).to_bytes()
    assert not mlsag.verify(mlsag.RingMLSAG(c, sig.responses, sig.key_image), b"m", ring, pseudo)
    # a non-canonical scalar is not accepted as another encoding of the same value
    big = Scalar.from_bytes(sig.c_zero).value + 2**252 + 27742317777372353535851937790883648493
    if big < 2**256:
        odd = big.to_bytes(32, "little")
        assert not mlsag.verify(
            mlsag.RingMLSAG(odd, sig.responses, sig.key_image), b"m", ring, pseudo
        )


def test_key_image_links_signatures_over_different_rings() -> None:
    rng, ring, x, z, pseudo = _ring(13)
    _, other_ring, _, _, _ = _ring(14)
    other_ring[7] = ring[4]
    a = mlsag.sign(b"a", ring, 4, x, z, pseudo, rng)
    b = mlsag.sign(b"b", other_ring, 7, x, z, pseudo, rng)
    assert mlsag.verify(b, b"b", other_ring, pseudo)
    assert a.key_image == b.key_image
    assert mlsag.key_image(x) != mlsag.key_image(x + Scalar(1))


def test_signer_must_know_the_secrets() -> None:
    rng, ring, x, z, pseudo = _ring(15)
    with pytest.raises(ValueError):
        mlsag.sign(b"m", ring, 4, x + Scalar(1), z, pseudo, rng)
    with pytest.raises(ValueError):
        mlsag.sign(b"m", ring, 4, x, z + Scalar(1), pseudo, rng)
    with pytest.raises(ValueError):
        mlsag.sign(b"m", ring, 11, x, z, pseudo, rng)


def test_signing_is_deterministic_given_rng() -> None:
    _, ring, x, z, pseudo = _ring(16)
    a = mlsag.sign(b"m", ring, 4, x, z, pseudo, SeededRandom(1))
    b = mlsag.sign(b"m", ring, 4, x, z, pseudo, SeededRandom(1))
    assert a == b


_VERIFIERS = [mlsag.verify, mlsag.verify_reference]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(1, mlsag.MAX_RING),
    data=st.data(),
)
def test_native_verify_agrees_with_the_python_reference(
    seed: int, size: int, data: st.DataObject
) -> None:
    """The one-call native verifier and the step-by-step Python one give the same answer
    on valid signatures and on every kind of tampering."""
    real = data.draw(st.integers(0, size - 1))
    rng, ring, x, z, pseudo = _ring(seed, size=size, real=real)
    sig = mlsag.sign(b"msg", ring, real, x, z, pseudo, rng)
    cases = [(sig, b"msg", ring, pseudo, True)]
    kind = data.draw(st.sampled_from(["response", "c_zero", "image", "msg", "member", "pseudo"]))
    if kind == "response":
        i = data.draw(st.integers(0, 2 * size - 1))
        bad = list(sig.responses)
        bad[i] = (Scalar.from_bytes(bad[i]) + Scalar(1)).to_bytes()
        cases.append(
            (mlsag.RingMLSAG(sig.c_zero, tuple(bad), sig.key_image), b"msg", ring, pseudo, False)
        )
    elif kind == "c_zero":
        c = (Scalar.from_bytes(sig.c_zero) + Scalar(1)).to_bytes()
        cases.append(
            (mlsag.RingMLSAG(c, sig.responses, sig.key_image), b"msg", ring, pseudo, False)
        )
    elif kind == "image":
        image = data.draw(
            st.sampled_from([IDENTITY.encoding, b"\xff" * 32, mlsag.key_image(x + Scalar(1))])
        )
        cases.append(
            (mlsag.RingMLSAG(sig.c_zero, sig.responses, image), b"msg", ring, pseudo, False)
        )
    elif kind == "msg":
        cases.append((sig, b"msh", ring, pseudo, False))
    elif kind == "member":
        j = data.draw(st.integers(0, size - 1))
        other = list(ring)
        junk = data.draw(
            st.sampled_from([b"\xff" * 32, b"\x01" * 31, basepoint_mul(Scalar(5)).encoding])
        )
        other[j] = (junk, ring[j][1]) if data.draw(st.booleans()) else (ring[j][0], junk)
        cases.append((sig, b"msg", other, pseudo, False))
    else:
        cases.append((sig, b"msg", ring, commit(41, Scalar(3)).encoding, False))
    for s, m, r, p, expected in cases:
        assert [v(s, m, r, p) for v in _VERIFIERS] == [expected, expected]
