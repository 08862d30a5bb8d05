//! Ed25519 (RFC 8032) with ed25519-dalek: every peer message, block and handshake signature
//! a validator checks or makes comes through here. OpenSSL's verifier, which `cryptography`
//! wraps, takes ~150 us on this project's machines; dalek's, on curve25519-dalek 5 as the
//! verifiers of this crate are (AVX-512 IFMA where the CPU has it, else AVX2:
//! native/Cargo.toml), ~60 us with AVX2. Signing: ~60-80 us against OpenSSL's ~120 us with
//! caches cold, as a validator's are (bench/RESULTS.md). A signer holds its key for the
//! process's life and zeroizes it when dropped.
//!
//! `verify_strict`: besides RFC 8032's checks (canonical S, the cofactorless equation on
//! the encoded R), it refuses small-order public keys and R, so no signature is valid
//! under a weak key. Honest signers never produce those.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A parsed public key (point decompression done once; callers keep these).
#[pyclass(frozen, module = "mcnode._native")]
pub struct Ed25519Verifier {
    key: VerifyingKey,
}

#[pymethods]
impl Ed25519Verifier {
    /// The key from its 32-byte encoding; `ValueError` if it is not a valid point.
    #[new]
    fn new(public: &[u8]) -> PyResult<Self> {
        let raw: [u8; 32] = public
            .try_into()
            .map_err(|_| PyValueError::new_err("Ed25519 public key must be 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&raw)
            .map_err(|_| PyValueError::new_err("Ed25519 public key is not a valid point"))?;
        Ok(Self { key })
    }

    /// True when `signature` (64 bytes) is this key's signature of `message`; any other
    /// input, malformed included, is False. The GIL is kept: a check is ~60 us, and a
    /// thread that gives the GIL away can wait a switch interval (5 ms) to get it back.
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(raw) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        self.key.verify_strict(message, &Signature::from_bytes(&raw)).is_ok()
    }
}

/// A private key, parsed once (its public half is a scalar multiplication), for signing
/// consensus messages: RFC 8032 signatures are deterministic, so these are byte for byte
/// the signatures `cryptography` makes (the tests hold them to it). The key is zeroized
/// when the object goes (ed25519-dalek's `ZeroizeOnDrop`).
#[pyclass(frozen, module = "mcnode._native")]
pub struct Ed25519Signer {
    key: SigningKey,
}

#[pymethods]
impl Ed25519Signer {
    /// The key from its 32-byte seed (RFC 8032's private key).
    #[new]
    fn new(seed: &[u8]) -> PyResult<Self> {
        let raw: [u8; 32] = seed
            .try_into()
            .map_err(|_| PyValueError::new_err("Ed25519 private key must be 32 bytes"))?;
        Ok(Self { key: SigningKey::from_bytes(&raw) })
    }

    /// The 64-byte signature of `message`. The GIL is kept, as for `verify`.
    fn sign<'py>(&self, py: Python<'py>, message: &[u8]) -> Bound<'py, pyo3::types::PyBytes> {
        pyo3::types::PyBytes::new(py, &self.key.sign(message).to_bytes())
    }

    /// The 32-byte public key.
    fn public<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        pyo3::types::PyBytes::new(py, self.key.verifying_key().as_bytes())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Ed25519Verifier>()?;
    m.add_class::<Ed25519Signer>()?;
    Ok(())
}
