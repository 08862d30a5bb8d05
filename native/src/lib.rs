//! mcnode._native: the crypto hot path of mcnode, on the audited dalek crates.
//!
//! Rules of this crate: points and scalars cross the boundary as 32-byte `bytes`;
//! every malformed input becomes a Python `ValueError`, never a panic.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::CompressedRistretto;
use curve25519_dalek::scalar::Scalar;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

fn to32(data: &[u8], what: &str) -> PyResult<[u8; 32]> {
    data.try_into()
        .map_err(|_| PyValueError::new_err(format!("{what} must be 32 bytes, got {}", data.len())))
}

fn scalar_from(data: &[u8]) -> PyResult<Scalar> {
    Option::from(Scalar::from_canonical_bytes(to32(data, "scalar")?))
        .ok_or_else(|| PyValueError::new_err("scalar is not canonical (not reduced mod l)"))
}

/// s * G for a canonical scalar s, compressed Ristretto255 encoding.
#[pyfunction]
fn basepoint_mul<'py>(py: Python<'py>, scalar: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let s = scalar_from(scalar)?;
    let p = RISTRETTO_BASEPOINT_TABLE * &s;
    Ok(PyBytes::new(py, p.compress().as_bytes()))
}

/// True when `point` is the canonical encoding of a Ristretto255 group element.
#[pyfunction]
fn is_valid_point(point: &[u8]) -> bool {
    match <[u8; 32]>::try_from(point) {
        Ok(b) => CompressedRistretto(b).decompress().is_some(),
        Err(_) => false,
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(basepoint_mul, m)?)?;
    m.add_function(wrap_pyfunction!(is_valid_point, m)?)?;
    Ok(())
}
