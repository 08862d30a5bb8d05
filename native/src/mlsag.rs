//! MLSAG ring-signature verification in one call.
//!
//! The same algebra as `mcnode.transaction.mlsag.verify` (the Python reference, which the
//! tests compare against), but every point is decompressed once and the ring walk runs
//! without the GIL, on curve25519-dalek 5 (its AVX-512 IFMA backend where the CPU has one:
//! see native/Cargo.toml). Per ring member j, with c the running challenge:
//!
//!   L0 = r0_j*G + c*P_j,  R0 = r0_j*Hp(P_j) + c*I,  L1 = r1_j*G + c*(C_j - C')
//!   c  = Hs(dst, msg, I, L0, R0, L1)
//!
//! and the signature holds when the walk returns to c_0. Public data only: variable time.
//!
//! Each step hashes the three points' encodings, and compressing a point costs an inverse
//! square root. The walk instead computes each point halved (the scalars times 1/2 mod l:
//! the group has prime order, so 2 * ((s/2) * P) = s * P exactly) and gets the three
//! encodings from one `double_and_compress_batch`, which shares a single field inversion
//! among them (~6.5 us for three instead of ~15.5).

use std::sync::OnceLock;

use dalek5::ristretto::{CompressedRistretto, RistrettoPoint};
use dalek5::scalar::Scalar;
use dalek5::traits::{IsIdentity, VartimeMultiscalarMul};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use sha2::{Digest, Sha512};

use crate::{hash_to_point_input, slices};

fn decompress(b: &[u8]) -> Option<RistrettoPoint> {
    let arr: [u8; 32] = b.try_into().ok()?;
    CompressedRistretto(arr).decompress()
}

fn canonical(b: &[u8]) -> Option<Scalar> {
    let arr: [u8; 32] = b.try_into().ok()?;
    Option::from(Scalar::from_canonical_bytes(arr))
}

/// SHA-512 of the framed (dst, parts) reduced mod l: `crypto.ristretto.hash_to_scalar`.
fn hash_to_scalar(dst: &[u8], parts: &[&[u8]]) -> Scalar {
    let mut h = Sha512::new();
    h.update([dst.len() as u8]);
    h.update(dst);
    for part in parts {
        h.update((part.len() as u32).to_le_bytes());
        h.update(part);
    }
    let wide: [u8; 64] = h.finalize().into();
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// 1/2 mod l.
fn half() -> &'static Scalar {
    static HALF: OnceLock<Scalar> = OnceLock::new();
    HALF.get_or_init(|| Scalar::from(2u64).invert())
}

struct Member {
    key: RistrettoPoint,
    key_hash: RistrettoPoint,
    commitment_difference: RistrettoPoint,
}

/// True when (c_zero, responses, key_image) is a valid MLSAG of `msg` over the ring of
/// (keys[j], commitments[j]) and `pseudo_output`. Any undecodable point, non-canonical
/// scalar, identity key image or length mismatch is simply `False`, as in Python.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn mlsag_verify(
    py: Python<'_>,
    dst_mlsag: &[u8],
    dst_key_image: &[u8],
    msg: &[u8],
    keys: Vec<Bound<'_, PyBytes>>,
    commitments: Vec<Bound<'_, PyBytes>>,
    pseudo_output: &[u8],
    c_zero: &[u8],
    responses: Vec<Bound<'_, PyBytes>>,
    key_image: &[u8],
) -> PyResult<bool> {
    if dst_mlsag.len() > 255 || dst_key_image.len() > 255 {
        return Err(PyValueError::new_err("domain separation tag longer than 255 bytes"));
    }
    let n = keys.len();
    if n == 0 || commitments.len() != n || responses.len() != 2 * n {
        return Ok(false);
    }
    let (keys, commitments, responses) = (slices(&keys), slices(&commitments), slices(&responses));
    Ok(py.allow_threads(|| {
        verify(dst_mlsag, dst_key_image, msg, &keys, &commitments, pseudo_output, c_zero, &responses, key_image)
            .unwrap_or(false)
    }))
}

#[allow(clippy::too_many_arguments)]
fn verify(
    dst_mlsag: &[u8],
    dst_key_image: &[u8],
    msg: &[u8],
    keys: &[&[u8]],
    commitments: &[&[u8]],
    pseudo_output: &[u8],
    c_zero: &[u8],
    responses: &[&[u8]],
    key_image: &[u8],
) -> Option<bool> {
    let image = decompress(key_image)?;
    if image.is_identity() {
        return Some(false);
    }
    let c0 = canonical(c_zero)?;
    let r = responses.iter().map(|b| canonical(b)).collect::<Option<Vec<_>>>()?;
    let pseudo = decompress(pseudo_output)?;
    let mut members = Vec::with_capacity(keys.len());
    for (k, c) in keys.iter().zip(commitments) {
        members.push(Member {
            key: decompress(k)?,
            key_hash: RistrettoPoint::from_uniform_bytes(&hash_to_point_input(dst_key_image, k).ok()?),
            commitment_difference: decompress(c)? - pseudo,
        });
    }
    let half = half();
    let mut c = c0;
    for (j, m) in members.iter().enumerate() {
        let (r0, r1) = (r[2 * j] * half, r[2 * j + 1] * half);
        let c_half = c * half;
        let l0 = RistrettoPoint::vartime_double_scalar_mul_basepoint(&c_half, &m.key, &r0);
        let r0p = RistrettoPoint::vartime_multiscalar_mul([r0, c_half], [m.key_hash, image]);
        let l1 = RistrettoPoint::vartime_double_scalar_mul_basepoint(&c_half, &m.commitment_difference, &r1);
        let encoded = RistrettoPoint::double_and_compress_batch([&l0, &r0p, &l1]);
        c = hash_to_scalar(
            dst_mlsag,
            &[msg, key_image, encoded[0].as_bytes(), encoded[1].as_bytes(), encoded[2].as_bytes()],
        );
    }
    Some(c == c0)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mlsag_verify, m)?)?;
    Ok(())
}
