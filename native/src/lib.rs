//! mcnode._native: the crypto hot path of mcnode, on the audited dalek crates.
//!
//! Rules of this crate: points and scalars cross the boundary as 32-byte `bytes`
//! (compressed Ristretto255 encodings, canonical little-endian scalars); every malformed
//! input becomes a Python `ValueError`, never a panic. Nothing here draws randomness of its
//! own: the one prover that needs it takes a 32-byte seed from the caller.
//!
//! Which functions are constant time: those that take secrets (`basepoint_mul`,
//! `scalar_mul`, `pedersen_commit`, `range_proof_prove`). The `*_vartime` ones and the
//! verifier only ever see public data.

use std::sync::OnceLock;

use bulletproofs::{BulletproofGens, PedersenGens, RangeProof};
use curve25519_dalek::constants::{RISTRETTO_BASEPOINT_POINT, RISTRETTO_BASEPOINT_TABLE};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoBasepointTable, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity, VartimeMultiscalarMul};
use merlin::Transcript;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha512};

mod ed25519;
mod ledger_hash;
mod mlsag;
mod range_batch;

/// Bits per value in every range proof: amounts are u64.
const RANGE_BITS: usize = 64;
/// Most commitments one aggregated proof covers (16 pseudo-outputs + 16 outputs).
const MAX_PARTIES: usize = 32;
/// Merlin transcript label shared by prover and verifier.
const RANGE_PROOF_LABEL: &[u8] = b"mcnode range proof v1";
/// Domain separation tag of the Pedersen value generator H.
const PEDERSEN_H_DST: &[u8] = b"mcnode pedersen H v1";

/// The byte strings of a list of Python `bytes`, borrowed. Lists of byte strings cross
/// the boundary as `Vec<Bound<PyBytes>>`, never `Vec<Vec<u8>>`: pyo3 builds a `Vec<u8>`
/// from a `bytes` one element at a time, a Python int each (~6 % of the enclave's CPU
/// under load went there).
pub(crate) fn slices<'a>(items: &'a [Bound<'_, PyBytes>]) -> Vec<&'a [u8]> {
    items.iter().map(|b| b.as_bytes()).collect()
}

fn to32(data: &[u8], what: &str) -> PyResult<[u8; 32]> {
    data.try_into()
        .map_err(|_| PyValueError::new_err(format!("{what} must be 32 bytes, got {}", data.len())))
}

fn scalar_from(data: &[u8]) -> PyResult<Scalar> {
    Option::from(Scalar::from_canonical_bytes(to32(data, "scalar")?))
        .ok_or_else(|| PyValueError::new_err("scalar is not canonical (not reduced mod l)"))
}

fn point_from(data: &[u8]) -> PyResult<RistrettoPoint> {
    CompressedRistretto(to32(data, "point")?)
        .decompress()
        .ok_or_else(|| PyValueError::new_err("not a valid Ristretto255 point encoding"))
}

fn out<'py>(py: Python<'py>, p: &RistrettoPoint) -> Bound<'py, PyBytes> {
    PyBytes::new(py, p.compress().as_bytes())
}

/// SHA-512 over (len(dst) as one byte || dst || msg): what `hash_to_point_impl` maps.
fn hash_to_point_input(dst: &[u8], msg: &[u8]) -> PyResult<[u8; 64]> {
    let dst_len = u8::try_from(dst.len())
        .map_err(|_| PyValueError::new_err("domain separation tag longer than 255 bytes"))?;
    let mut h = Sha512::new();
    h.update([dst_len]);
    h.update(dst);
    h.update(msg);
    Ok(h.finalize().into())
}

/// SHA-512 over (len(dst) as one byte || dst || msg), mapped to the group by Elligator.
fn hash_to_point_impl(dst: &[u8], msg: &[u8]) -> PyResult<RistrettoPoint> {
    Ok(RistrettoPoint::from_uniform_bytes(&hash_to_point_input(dst, msg)?))
}

fn pedersen_gens() -> &'static PedersenGens {
    static GENS: OnceLock<PedersenGens> = OnceLock::new();
    GENS.get_or_init(|| {
        let g = RISTRETTO_BASEPOINT_POINT;
        let h = hash_to_point_impl(PEDERSEN_H_DST, g.compress().as_bytes())
            .expect("the tag is short");
        // bulletproofs names the value generator B and the blinding generator B_blinding.
        PedersenGens { B: h, B_blinding: g }
    })
}

/// A fixed-base table for H: `fee * H` in a few microseconds.
fn pedersen_h_table() -> &'static RistrettoBasepointTable {
    static TABLE: OnceLock<RistrettoBasepointTable> = OnceLock::new();
    TABLE.get_or_init(|| RistrettoBasepointTable::create(&pedersen_gens().B))
}

fn bulletproof_gens() -> &'static BulletproofGens {
    static GENS: OnceLock<BulletproofGens> = OnceLock::new();
    GENS.get_or_init(|| BulletproofGens::new(RANGE_BITS, MAX_PARTIES))
}

/// s * G for a canonical scalar s (constant time).
#[pyfunction]
fn basepoint_mul<'py>(py: Python<'py>, scalar: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let s = scalar_from(scalar)?;
    Ok(out(py, &(RISTRETTO_BASEPOINT_TABLE * &s)))
}

/// True when `point` is the canonical encoding of a Ristretto255 group element.
#[pyfunction]
fn is_valid_point(point: &[u8]) -> bool {
    match <[u8; 32]>::try_from(point) {
        Ok(b) => CompressedRistretto(b).decompress().is_some(),
        Err(_) => false,
    }
}

/// a + b.
#[pyfunction]
fn point_add<'py>(py: Python<'py>, a: &[u8], b: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    Ok(out(py, &(point_from(a)? + point_from(b)?)))
}

/// a - b.
#[pyfunction]
fn point_sub<'py>(py: Python<'py>, a: &[u8], b: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    Ok(out(py, &(point_from(a)? - point_from(b)?)))
}

/// s * P (constant time).
#[pyfunction]
fn scalar_mul<'py>(py: Python<'py>, scalar: &[u8], point: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    Ok(out(py, &(scalar_from(scalar)? * point_from(point)?)))
}

/// a * A + b * G, variable time: for verifiers only.
#[pyfunction]
fn double_scalar_mul_basepoint_vartime<'py>(
    py: Python<'py>,
    a: &[u8],
    point: &[u8],
    b: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let p = RistrettoPoint::vartime_double_scalar_mul_basepoint(
        &scalar_from(a)?,
        &point_from(point)?,
        &scalar_from(b)?,
    );
    Ok(out(py, &p))
}

/// sum(s_i * P_i), variable time (Straus / Pippenger by size): for verifiers only.
#[pyfunction]
fn multiscalar_mul_vartime<'py>(
    py: Python<'py>,
    scalars: Vec<Bound<'py, PyBytes>>,
    points: Vec<Bound<'py, PyBytes>>,
) -> PyResult<Bound<'py, PyBytes>> {
    if scalars.len() != points.len() {
        return Err(PyValueError::new_err("scalars and points differ in length"));
    }
    let s = scalars.iter().map(|b| scalar_from(b.as_bytes())).collect::<PyResult<Vec<_>>>()?;
    let p = points.iter().map(|b| point_from(b.as_bytes())).collect::<PyResult<Vec<_>>>()?;
    Ok(out(py, &RistrettoPoint::vartime_multiscalar_mul(&s, &p)))
}

/// Hash (dst, msg) to a group element: SHA-512(len(dst) || dst || msg) then Elligator
/// (RFC 9496 "one-way map"). Nobody knows the discrete log of the result.
#[pyfunction]
fn hash_to_point<'py>(py: Python<'py>, dst: &[u8], msg: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    Ok(out(py, &hash_to_point_impl(dst, msg)?))
}

/// The Pedersen value generator H = hash_to_point(b"mcnode pedersen H v1", G).
#[pyfunction]
fn pedersen_h(py: Python<'_>) -> Bound<'_, PyBytes> {
    out(py, &pedersen_gens().B)
}

/// value * H + blinding * G (constant time).
#[pyfunction]
fn pedersen_commit<'py>(
    py: Python<'py>,
    value: u64,
    blinding: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let c = pedersen_gens().commit(Scalar::from(value), scalar_from(blinding)?);
    Ok(out(py, &c))
}

fn padded_len(n: usize) -> PyResult<usize> {
    if n == 0 || n > MAX_PARTIES {
        return Err(PyValueError::new_err(format!(
            "a range proof covers 1..={MAX_PARTIES} values, got {n}"
        )));
    }
    Ok(n.next_power_of_two())
}

/// True when sum(inputs) == sum(outputs) + fee * H: a tx's pseudo-outputs balance its
/// outputs and its fee (`fee * H` is the commitment to the fee with zero blinding). Point
/// additions only, plus one fixed-base multiplication; ValueError naming the first
/// commitment that is not a valid point encoding.
#[pyfunction]
fn commitments_balance(
    inputs: Vec<Bound<'_, PyBytes>>,
    outputs: Vec<Bound<'_, PyBytes>>,
    fee: u64,
) -> PyResult<bool> {
    let mut acc = pedersen_h_table() * &Scalar::from(fee);
    for (i, c) in outputs.iter().enumerate() {
        acc += point_from(c.as_bytes()).map_err(|e| PyValueError::new_err(format!("output {i}: {e}")))?;
    }
    let mut ins = RistrettoPoint::identity();
    for (i, c) in inputs.iter().enumerate() {
        ins += point_from(c.as_bytes()).map_err(|e| PyValueError::new_err(format!("input {i}: {e}")))?;
    }
    Ok(ins == acc)
}

/// One aggregated 64-bit Bulletproof over `values` committed with `blindings`.
///
/// The list is padded to a power of two with (value 0, blinding 0), whose commitment is the
/// identity; the verifier pads the same way. Randomness: ChaCha20 seeded with `seed`.
/// Returns (proof bytes, the commitments, one per given value).
#[pyfunction]
fn range_proof_prove<'py>(
    py: Python<'py>,
    values: Vec<u64>,
    blindings: Vec<Bound<'py, PyBytes>>,
    seed: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, Vec<Bound<'py, PyBytes>>)> {
    if values.len() != blindings.len() {
        return Err(PyValueError::new_err("values and blindings differ in length"));
    }
    let m = padded_len(values.len())?;
    let seed = to32(seed, "seed")?;
    let mut vals = values.clone();
    let mut blinds = blindings.iter().map(|b| scalar_from(b.as_bytes())).collect::<PyResult<Vec<_>>>()?;
    vals.resize(m, 0);
    blinds.resize(m, Scalar::ZERO);
    let result = py.allow_threads(|| {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut transcript = Transcript::new(RANGE_PROOF_LABEL);
        RangeProof::prove_multiple_with_rng(
            bulletproof_gens(),
            pedersen_gens(),
            &mut transcript,
            &vals,
            &blinds,
            RANGE_BITS,
            &mut rng,
        )
    });
    let (proof, commitments) =
        result.map_err(|e| PyValueError::new_err(format!("range proof failed: {e}")))?;
    let coms = commitments[..values.len()]
        .iter()
        .map(|c| PyBytes::new(py, c.as_bytes()))
        .collect();
    Ok((PyBytes::new(py, &proof.to_bytes()), coms))
}

/// True when `proof` shows every commitment opens to a value in [0, 2^64), by the
/// `bulletproofs` crate's own verifier (on curve25519-dalek 4.1). Validation checks a
/// single proof with `range_batch` instead (2-3x faster); this one stays as the reference
/// the tests and `bench_tx` compare it against.
///
/// The verifier's random batching weight is drawn from ChaCha20 seeded by SHA-512 of the
/// proof and commitments, so it is fixed only after the prover has committed to both, and
/// verification stays deterministic.
#[pyfunction]
fn range_proof_verify(
    py: Python<'_>,
    proof: &[u8],
    commitments: Vec<Bound<'_, PyBytes>>,
) -> PyResult<bool> {
    let m = padded_len(commitments.len())?;
    let mut coms = commitments
        .iter()
        .map(|c| to32(c.as_bytes(), "commitment").map(CompressedRistretto))
        .collect::<PyResult<Vec<_>>>()?;
    coms.resize(m, RistrettoPoint::identity().compress());
    let Ok(proof) = RangeProof::from_bytes(proof) else {
        return Ok(false);
    };
    let mut h = Sha512::new();
    h.update(proof.to_bytes());
    for c in &coms {
        h.update(c.as_bytes());
    }
    let digest: [u8; 64] = h.finalize().into();
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&digest[..32]);
    let ok = py.allow_threads(|| {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut transcript = Transcript::new(RANGE_PROOF_LABEL);
        proof
            .verify_multiple_with_rng(
                bulletproof_gens(),
                pedersen_gens(),
                &mut transcript,
                &coms,
                RANGE_BITS,
                &mut rng,
            )
            .is_ok()
    });
    Ok(ok)
}

/// The curve arithmetic backend curve25519-dalek 5 (the verifiers' crate) runs on here:
/// "avx512ifma", "avx2" or "serial". It is chosen at run time the way the crate chooses it
/// (AVX-512 IFMA with VL if this build has that backend and the CPU has them, else AVX2,
/// else serial), so the verifiers' speed can be reported and checked.
#[pyfunction]
fn curve_backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        #[cfg(curve25519_dalek_backend = "avx512")]
        if std::is_x86_feature_detected!("avx512ifma") && std::is_x86_feature_detected!("avx512vl") {
            return "avx512ifma";
        }
        if std::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "serial"
}

/// Builds what the verifiers and the prover build once per process (the range proofs'
/// generators: ~80 ms), so that a validator pays it at start and not in its first client's
/// call. Later calls return at once.
#[pyfunction]
fn warm_up(py: Python<'_>) {
    py.allow_threads(|| {
        pedersen_gens();
        bulletproof_gens();
        range_batch::warm_up();
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(basepoint_mul, m)?)?;
    m.add_function(wrap_pyfunction!(is_valid_point, m)?)?;
    m.add_function(wrap_pyfunction!(point_add, m)?)?;
    m.add_function(wrap_pyfunction!(point_sub, m)?)?;
    m.add_function(wrap_pyfunction!(scalar_mul, m)?)?;
    m.add_function(wrap_pyfunction!(double_scalar_mul_basepoint_vartime, m)?)?;
    m.add_function(wrap_pyfunction!(multiscalar_mul_vartime, m)?)?;
    m.add_function(wrap_pyfunction!(hash_to_point, m)?)?;
    m.add_function(wrap_pyfunction!(pedersen_h, m)?)?;
    m.add_function(wrap_pyfunction!(pedersen_commit, m)?)?;
    m.add_function(wrap_pyfunction!(commitments_balance, m)?)?;
    m.add_function(wrap_pyfunction!(range_proof_prove, m)?)?;
    m.add_function(wrap_pyfunction!(range_proof_verify, m)?)?;
    m.add_function(wrap_pyfunction!(curve_backend, m)?)?;
    m.add_function(wrap_pyfunction!(warm_up, m)?)?;
    mlsag::register(m)?;
    range_batch::register(m)?;
    ledger_hash::register(m)?;
    ed25519::register(m)?;
    Ok(())
}
