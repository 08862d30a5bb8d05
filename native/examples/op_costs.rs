//! What one MLSAG ring member costs, operation by operation, on the verifiers' curve crate
//! (curve25519-dalek 5, the backend it picks at run time: see native/Cargo.toml).
//!
//!     cd native && cargo run --release --example op_costs
//!
//! `mlsag.rs` does, per ring member: two `vartime_double_scalar_mul_basepoint` (L0, L1),
//! one two-point `vartime_multiscalar_mul` (R0), two decompressions (the member's key and
//! commitment), one hash to the group (`from_uniform_bytes`, two Elligator maps), one
//! `double_and_compress_batch` of three points and one SHA-512. The sum of these is the
//! floor of a ring-of-11 verification with this algebra; `bench/RESULTS.md` compares it
//! with what the whole verification costs.

use std::hint::black_box;
use std::time::Instant;

use dalek5::ristretto::RistrettoPoint;
use dalek5::scalar::Scalar;
use dalek5::traits::VartimeMultiscalarMul;
use sha2::{Digest, Sha512};

fn time<F: FnMut()>(name: &str, n: u32, mut f: F) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("{name:42} {us:8.2} us");
    us
}

/// The backend curve25519-dalek 5 picks here (the same test as `_native.curve_backend`).
fn backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        #[cfg(curve25519_dalek_backend = "avx512")]
        if std::is_x86_feature_detected!("avx512ifma") && std::is_x86_feature_detected!("avx512vl")
        {
            return "avx512ifma";
        }
        if std::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "serial"
}

fn main() {
    let p = RistrettoPoint::from_uniform_bytes(&[1u8; 64]);
    let q = RistrettoPoint::from_uniform_bytes(&[2u8; 64]);
    let r = RistrettoPoint::from_uniform_bytes(&[4u8; 64]);
    let a = Scalar::from_bytes_mod_order_wide(&[3u8; 64]);
    let b = Scalar::from_bytes_mod_order_wide(&[9u8; 64]);
    let compressed = p.compress();
    println!("curve25519-dalek 5 backend: {}", backend());
    let double_base = time("vartime_double_scalar_mul_basepoint", 20_000, || {
        black_box(RistrettoPoint::vartime_double_scalar_mul_basepoint(
            black_box(&a),
            &p,
            &b,
        ));
    });
    let two_point = time("vartime_multiscalar_mul, 2 points", 20_000, || {
        black_box(RistrettoPoint::vartime_multiscalar_mul(
            [black_box(a), b],
            [p, q],
        ));
    });
    let decompress = time("decompress", 50_000, || {
        black_box(black_box(&compressed).decompress());
    });
    let to_group = time("from_uniform_bytes (hash to the group)", 50_000, || {
        black_box(RistrettoPoint::from_uniform_bytes(black_box(&[7u8; 64])));
    });
    let compress3 = time("double_and_compress_batch, 3 points", 50_000, || {
        black_box(RistrettoPoint::double_and_compress_batch([
            black_box(&p),
            &q,
            &r,
        ]));
    });
    let sha = time("SHA-512 of a challenge (~200 bytes)", 200_000, || {
        black_box(Sha512::digest(black_box([5u8; 200])));
    });
    let member = 2.0 * double_base + two_point + 2.0 * decompress + to_group + compress3 + sha;
    println!("{:42} {member:8.2} us", "one ring member, the sum");
    println!("{:42} {:8.2} us", "a ring of 11", 11.0 * member);
}
