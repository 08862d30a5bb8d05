//! Batch verification of the aggregated range proofs `range_proof_prove` makes.
//!
//! The `bulletproofs` crate checks one proof with one multiscalar multiplication (MSM) of
//! about 2nm + 2 lg(nm) + m + 6 points; for a 1-in/2-out tx (m = 4, n = 64) that is ~540
//! points, of which 2nm + 2 (the generators G, H, B, B_blinding) are the same in every
//! proof. It has no batch verifier, so this module replays its verifier (same transcript,
//! same equation; see `RangeProof::verify_multiple_with_rng` in bulletproofs 5) for many
//! proofs at once: each proof's equation is scaled by a random weight and all are added
//! into one MSM in which the shared generators appear once. k proofs then cost one MSM
//! of ~2nm + k(2 lg(nm) + m + 4) points instead of k MSMs of ~2nm each.
//!
//! The result: true when every proof checks out; false when at least one does not (with
//! probability 1 - 2^-250 per bad proof; callers then check proofs one by one to learn
//! which). The weights come from ChaCha20 seeded by SHA-512 of every proof and commitment
//! in the batch, so they are fixed only after the prover has committed to all of them,
//! and verification stays deterministic.

use std::sync::OnceLock;

use dalek5::ristretto::{CompressedRistretto, RistrettoPoint};
use dalek5::scalar::Scalar;
use dalek5::traits::{IsIdentity, VartimeMultiscalarMul};
use merlin::Transcript;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::Sha512;
use sha3::digest::{ExtendableOutput, Update, XofReader};
use sha3::Shake256;

use crate::{bulletproof_gens, padded_len, pedersen_gens, to32, MAX_PARTIES, RANGE_BITS, RANGE_PROOF_LABEL};

/// Most proofs in one call (bounds the work one call can be made to do).
const MAX_BATCH: usize = 4096;

/// The generators the batch MSM shares, on curve25519-dalek 5 (see native/Cargo.toml).
struct Generators {
    /// Every party's G, then H, party-major (party j's n generators at j*n..(j+1)*n), as
    /// the crate's aggregated iterators order them.
    g: Vec<RistrettoPoint>,
    h: Vec<RistrettoPoint>,
    /// The Pedersen generators: B (the value's) and B_blinding.
    b: RistrettoPoint,
    b_blinding: RistrettoPoint,
}

/// A point of curve25519-dalek 4 (bulletproofs') as one of 5.
fn from_dalek4(p: &curve25519_dalek::ristretto::RistrettoPoint) -> RistrettoPoint {
    CompressedRistretto(p.compress().to_bytes())
        .decompress()
        .expect("a compressed group element decompresses")
}

/// G comes from the crate's public share view; the crate keeps H private, so H is derived
/// here the way the crate derives it: a SHAKE256 stream over "GeneratorsChain" || b'H' ||
/// party index (u32 LE), one point from each 64 bytes. A wrong H would make every valid
/// proof fail, which the tests would see.
fn generators() -> &'static Generators {
    static GENS: OnceLock<Generators> = OnceLock::new();
    GENS.get_or_init(|| {
        let bp = bulletproof_gens();
        let mut g = Vec::with_capacity(MAX_PARTIES * RANGE_BITS);
        let mut h = Vec::with_capacity(MAX_PARTIES * RANGE_BITS);
        for j in 0..MAX_PARTIES {
            g.extend(bp.share(j).G(RANGE_BITS).map(from_dalek4));
            let mut shake = Shake256::default();
            shake.update(b"GeneratorsChain");
            let mut label = [b'H', 0, 0, 0, 0];
            label[1..].copy_from_slice(&(j as u32).to_le_bytes());
            shake.update(&label);
            let mut reader = shake.finalize_xof();
            for _ in 0..RANGE_BITS {
                let mut wide = [0u8; 64];
                reader.read(&mut wide);
                h.push(RistrettoPoint::from_uniform_bytes(&wide));
            }
        }
        let pc = pedersen_gens();
        Generators { g, h, b: from_dalek4(&pc.B), b_blinding: from_dalek4(&pc.B_blinding) }
    })
}

/// Builds the generators now (~80 ms, once per process) rather than in the first proof's
/// verification (see `warm_up` in lib.rs).
pub fn warm_up() {
    generators();
}

/// A proof's fields, in the crate's encoding order.
struct Proof {
    a: CompressedRistretto,
    s: CompressedRistretto,
    t1: CompressedRistretto,
    t2: CompressedRistretto,
    t_x: Scalar,
    t_x_blinding: Scalar,
    e_blinding: Scalar,
    l: Vec<CompressedRistretto>,
    r: Vec<CompressedRistretto>,
    ipp_a: Scalar,
    ipp_b: Scalar,
}

fn point_at(b: &[u8], i: usize) -> CompressedRistretto {
    let mut a = [0u8; 32];
    a.copy_from_slice(&b[32 * i..32 * (i + 1)]);
    CompressedRistretto(a)
}

fn scalar_at(b: &[u8], i: usize) -> Option<Scalar> {
    let mut a = [0u8; 32];
    a.copy_from_slice(&b[32 * i..32 * (i + 1)]);
    Option::from(Scalar::from_canonical_bytes(a))
}

/// The crate's `RangeProof::from_bytes` rules: 32-byte words, 4 points and 3 canonical
/// scalars, then lg_n (L, R) pairs and two canonical scalars.
fn parse(b: &[u8]) -> Option<Proof> {
    if b.len() % 32 != 0 || b.len() < 9 * 32 {
        return None;
    }
    let words = b.len() / 32;
    let pairs = (words - 9) / 2;
    if (words - 9) % 2 != 0 || pairs >= 32 {
        return None;
    }
    let ipp = &b[7 * 32..];
    Some(Proof {
        a: point_at(b, 0),
        s: point_at(b, 1),
        t1: point_at(b, 2),
        t2: point_at(b, 3),
        t_x: scalar_at(b, 4)?,
        t_x_blinding: scalar_at(b, 5)?,
        e_blinding: scalar_at(b, 6)?,
        l: (0..pairs).map(|i| point_at(ipp, 2 * i)).collect(),
        r: (0..pairs).map(|i| point_at(ipp, 2 * i + 1)).collect(),
        ipp_a: scalar_at(ipp, 2 * pairs)?,
        ipp_b: scalar_at(ipp, 2 * pairs + 1)?,
    })
}

fn challenge(t: &mut Transcript, label: &'static [u8]) -> Scalar {
    let mut wide = [0u8; 64];
    t.challenge_bytes(label, &mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// The crate's `validate_and_append_point`: the identity is refused.
fn append_nonidentity(t: &mut Transcript, label: &'static [u8], p: &CompressedRistretto) -> Option<()> {
    if p.is_identity() {
        return None;
    }
    t.append_message(label, p.as_bytes());
    Some(())
}

/// 1 + x + ... + x^(n-1) for n a power of two (every n here is: 64, a padded party
/// count, their product), in log2(n) steps: the sum of the first 2k powers is the sum of
/// the first k times (1 + x^k).
fn sum_of_powers(x: &Scalar, n: usize) -> Scalar {
    assert!(n.is_power_of_two(), "range proof sizes are powers of two");
    let mut sum = Scalar::ONE;
    let mut x_k = *x;
    let mut k = 1;
    while k < n {
        sum += sum * x_k;
        x_k *= x_k;
        k *= 2;
    }
    sum
}

/// Everything the batch needs from one proof: its dynamic terms and its contributions to
/// the shared generators' scalars, all multiplied by the proof's weight `weight`.
struct Terms<'a> {
    g: &'a mut [Scalar],
    h: &'a mut [Scalar],
    b: &'a mut Scalar,
    b_blinding: &'a mut Scalar,
    scalars: &'a mut Vec<Scalar>,
    points: &'a mut Vec<CompressedRistretto>,
}

/// Replay one proof's transcript and add its weighted equation to `out`. None when the
/// proof is malformed in a way the crate refuses before its MSM.
fn add_proof(
    proof: &Proof,
    commitments: &[CompressedRistretto],
    c: Scalar,
    weight: Scalar,
    out: &mut Terms<'_>,
) -> Option<()> {
    let n = RANGE_BITS;
    let m = commitments.len();
    let nm = n * m;
    let lg_nm = proof.l.len();
    if nm != 1 << lg_nm {
        return None;
    }
    let mut t = Transcript::new(RANGE_PROOF_LABEL);
    t.append_message(b"dom-sep", b"rangeproof v1");
    t.append_u64(b"n", n as u64);
    t.append_u64(b"m", m as u64);
    for v in commitments {
        t.append_message(b"V", v.as_bytes()); // zero commitments are allowed (padding)
    }
    append_nonidentity(&mut t, b"A", &proof.a)?;
    append_nonidentity(&mut t, b"S", &proof.s)?;
    let y = challenge(&mut t, b"y");
    let z = challenge(&mut t, b"z");
    append_nonidentity(&mut t, b"T_1", &proof.t1)?;
    append_nonidentity(&mut t, b"T_2", &proof.t2)?;
    let x = challenge(&mut t, b"x");
    t.append_message(b"t_x", proof.t_x.as_bytes());
    t.append_message(b"t_x_blinding", proof.t_x_blinding.as_bytes());
    t.append_message(b"e_blinding", proof.e_blinding.as_bytes());
    let w = challenge(&mut t, b"w");

    // inner-product argument: its challenges u_i, then s_i = prod_j u_j^(+-1)
    t.append_message(b"dom-sep", b"ipp v1");
    t.append_u64(b"n", nm as u64);
    let mut u = Vec::with_capacity(lg_nm);
    for (l, r) in proof.l.iter().zip(&proof.r) {
        append_nonidentity(&mut t, b"L", l)?;
        append_nonidentity(&mut t, b"R", r)?;
        u.push(challenge(&mut t, b"u"));
    }
    let mut u_inv = u.clone();
    let all_inv = Scalar::invert_batch_alloc(&mut u_inv);
    let u_sq: Vec<Scalar> = u.iter().map(|v| v * v).collect();
    let u_inv_sq: Vec<Scalar> = u_inv.iter().map(|v| v * v).collect();
    let mut s = Vec::with_capacity(nm);
    s.push(all_inv);
    for i in 1..nm {
        let lg_i = (usize::BITS - 1 - i.leading_zeros()) as usize;
        s.push(s[i - (1 << lg_i)] * u_sq[lg_nm - 1 - lg_i]);
    }

    let zz = z * z;
    let y_inv = y.invert();
    let (a, b) = (proof.ipp_a, proof.ipp_b);
    // G_i: weight * (-z - a s_i)
    let wz = weight * z;
    let wa = weight * a;
    for (acc, s_i) in out.g[..nm].iter_mut().zip(&s) {
        *acc -= wz + wa * s_i;
    }
    // H_i: weight * (z + y^-i (zz z^j 2^k - b s_(nm-1-i))) for i = j n + k
    let mut wy = weight; // weight * y^-i
    let mut z_j = zz; // zz * z^j
    for j in 0..m {
        let mut z2 = z_j; // zz * z^j * 2^k
        for k in 0..n {
            let i = j * n + k;
            out.h[i] += wz + wy * (z2 - b * s[nm - 1 - i]);
            wy *= y_inv;
            z2 += z2;
        }
        z_j *= z;
    }
    let delta = (z - zz) * sum_of_powers(&y, nm) - zz * z * sum_of_powers(&Scalar::from(2u64), n) * sum_of_powers(&z, m);
    *out.b += weight * (w * (proof.t_x - a * b) + c * (delta - proof.t_x));
    *out.b_blinding -= weight * (proof.e_blinding + c * proof.t_x_blinding);

    let wc = weight * c;
    out.scalars.extend([weight, weight * x, wc * x, wc * x * x]);
    out.points.extend([proof.a, proof.s, proof.t1, proof.t2]);
    out.scalars.extend(u_sq.iter().map(|v| weight * v));
    out.points.extend(proof.l.iter().copied());
    out.scalars.extend(u_inv_sq.iter().map(|v| weight * v));
    out.points.extend(proof.r.iter().copied());
    let mut zk = wc * zz;
    for v in commitments {
        out.scalars.push(zk);
        out.points.push(*v);
        zk *= z;
    }
    Some(())
}

fn verify_batch(items: &[(Proof, Vec<CompressedRistretto>)], seed: [u8; 32]) -> bool {
    let gens = generators();
    let max_nm = items.iter().map(|(_, v)| v.len()).max().unwrap_or(0) * RANGE_BITS;
    let mut g = vec![Scalar::ZERO; max_nm];
    let mut h = vec![Scalar::ZERO; max_nm];
    let (mut b, mut b_blinding) = (Scalar::ZERO, Scalar::ZERO);
    let mut scalars = Vec::new();
    let mut points = Vec::new();
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut random_scalar = || {
        let mut wide = [0u8; 64];
        rng.fill_bytes(&mut wide);
        Scalar::from_bytes_mod_order_wide(&wide)
    };
    for (proof, commitments) in items {
        let c = random_scalar();
        let weight = random_scalar();
        let mut terms = Terms {
            g: &mut g,
            h: &mut h,
            b: &mut b,
            b_blinding: &mut b_blinding,
            scalars: &mut scalars,
            points: &mut points,
        };
        if add_proof(proof, commitments, c, weight, &mut terms).is_none() {
            return false;
        }
    }
    // G and H of party j sit at j*64.. in both our arrays and the generator tables.
    let dynamic = points.iter().map(|p| p.decompress());
    let shared = [Some(gens.b), Some(gens.b_blinding)]
        .into_iter()
        .chain(gens.g[..max_nm].iter().map(|p| Some(*p)))
        .chain(gens.h[..max_nm].iter().map(|p| Some(*p)));
    let all_scalars = scalars.iter().chain([&b, &b_blinding]).chain(&g).chain(&h);
    match RistrettoPoint::optional_multiscalar_mul(all_scalars, dynamic.chain(shared)) {
        Some(p) => p.is_identity(),
        None => false,
    }
}

/// True when every (proof, commitments) pair shows each commitment opens to a value in
/// [0, 2^64) (see the module docs); false when any does not. ValueError for a malformed
/// argument list (a commitment not 32 bytes, 0 or more than 32 commitments, too many
/// proofs), as `range_proof_verify` does.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn range_proofs_verify_batch(
    py: Python<'_>,
    items: Vec<(Bound<'_, PyBytes>, Vec<Bound<'_, PyBytes>>)>,
) -> PyResult<bool> {
    if items.len() > MAX_BATCH {
        return Err(PyValueError::new_err(format!("at most {MAX_BATCH} proofs in one batch")));
    }
    let mut parsed = Vec::with_capacity(items.len());
    let mut all_parse = true;
    let mut h = <Sha512 as sha2::Digest>::new();
    sha2::Digest::update(&mut h, b"mcnode range proof batch v1");
    for (proof, commitments) in &items {
        let proof = proof.as_bytes();
        let m = padded_len(commitments.len())?;
        let mut coms = commitments
            .iter()
            .map(|c| to32(c.as_bytes(), "commitment").map(CompressedRistretto))
            .collect::<PyResult<Vec<_>>>()?;
        coms.resize(m, CompressedRistretto([0u8; 32]));
        sha2::Digest::update(&mut h, (proof.len() as u64).to_le_bytes());
        sha2::Digest::update(&mut h, proof);
        sha2::Digest::update(&mut h, (coms.len() as u64).to_le_bytes());
        for c in &coms {
            sha2::Digest::update(&mut h, c.as_bytes());
        }
        match parse(proof) {
            Some(p) => parsed.push((p, coms)),
            None => all_parse = false,
        }
    }
    if !all_parse {
        return Ok(false);
    }
    let digest: [u8; 64] = sha2::Digest::finalize(h).into();
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&digest[..32]);
    Ok(py.allow_threads(|| verify_batch(&parsed, seed)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(range_proofs_verify_batch, m)?)?;
    Ok(())
}
