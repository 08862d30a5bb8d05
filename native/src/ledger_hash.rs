//! The ledger's TxOut Merkle tree, extended by one block's outputs in one call.
//!
//! The same hashes as `mcnode.transaction.membership` and `mcnode.ledger.merkle.extend_tree`
//! (the Python reference, which the tests compare against byte for byte), SHA-512/256 with
//! a one-byte domain tag:
//!
//!   leaf(encoded TxOut) = H(0x00 || encoding),  node(l, r) = H(0x01 || l || r),  nil = H(0x02)
//!
//! over the TxOuts in ledger order, padded with nil leaves to a power of two. Node (level, i)
//! covers leaves [i * 2^level, (i + 1) * 2^level).
//!
//! The old tree enters as its *frontier*: for each set bit `level` of `size`, lowest first,
//! the hash of node (level, (size >> level) - 1), the complete subtree just left of the new
//! leaves. Those are the only old nodes an append reads. Records come back in the ledger's
//! key format (`ledger/db.py`): TxOut index = u64 big-endian, Merkle node = level (1 byte)
//! || index (u64 big-endian), so that they go into LMDB as they are. Hashing runs without
//! the GIL. Public data only.

use std::sync::OnceLock;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use sha2::{Digest, Sha512_256};

type Hash = [u8; 32];

/// Deepest tree accepted: `transaction.membership.MAX_DEPTH`.
const MAX_DEPTH: usize = 48;
const TAG_LEAF: u8 = 0;
const TAG_NODE: u8 = 1;
const TAG_NIL: u8 = 2;

fn tagged(tag: u8) -> Sha512_256 {
    let mut h = Sha512_256::new();
    h.update([tag]);
    h
}

fn leaf_hash(encoding: &[u8]) -> Hash {
    let mut h = tagged(TAG_LEAF);
    h.update(encoding);
    h.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = tagged(TAG_NODE);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Hash of an all-nil subtree of each height (`ledger.merkle.NIL_HASHES`).
fn nil_hashes() -> &'static [Hash; MAX_DEPTH + 1] {
    static NIL: OnceLock<[Hash; MAX_DEPTH + 1]> = OnceLock::new();
    NIL.get_or_init(|| {
        let mut out = [[0u8; 32]; MAX_DEPTH + 1];
        out[0] = tagged(TAG_NIL).finalize().into();
        for level in 1..=MAX_DEPTH {
            out[level] = node_hash(&out[level - 1], &out[level - 1]);
        }
        out
    })
}

/// Levels above the leaves in a tree of `size` real leaves (`membership.depth_for`).
fn depth_for(size: u64) -> usize {
    (64 - size.saturating_sub(1).leading_zeros()) as usize
}

fn node_key(level: usize, index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = level as u8;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

/// What one append produces (see `ledger_merkle_append`).
struct Appended {
    leaves: Vec<Hash>,
    /// (level, index, hash) for every rewritten node of level >= 1, in key order.
    nodes: Vec<(usize, u64, Hash)>,
    root: Hash,
    frontier: Vec<Hash>,
}

/// `old[level]` is the frontier node at `level` (present exactly for the set bits of
/// `size`); `size + encodings.len()` has been checked to fit in MAX_DEPTH levels.
fn append(size: u64, old: &[Option<Hash>], encodings: &[&[u8]]) -> Appended {
    let nil = nil_hashes();
    let end = size + encodings.len() as u64;
    let depth = depth_for(end);
    let leaves: Vec<Hash> = encodings.iter().map(|e| leaf_hash(e)).collect();
    // levels[l] holds the rewritten nodes lo_l..=hi_l of level l.
    let mut levels: Vec<(u64, Vec<Hash>)> = Vec::with_capacity(depth + 1);
    levels.push((size, leaves.clone()));
    let mut nodes = Vec::with_capacity(encodings.len() + 2 * depth);
    let (mut lo, mut hi) = (size, end - 1);
    for level in 1..=depth {
        let below = &levels[level - 1].1;
        let (next_lo, next_hi) = (lo >> 1, hi >> 1);
        let mut row = Vec::with_capacity((next_hi - next_lo + 1) as usize);
        for i in next_lo..=next_hi {
            let (l, r) = (2 * i, 2 * i + 1);
            // The left child is new, or else the complete old subtree on the frontier; the
            // right child is new, or else past the end (nil).
            let left = if l >= lo {
                &below[(l - lo) as usize]
            } else {
                old[level - 1].as_ref().expect("checked: a frontier node for each set bit")
            };
            let right = if r <= hi { &below[(r - lo) as usize] } else { &nil[level - 1] };
            let h = node_hash(left, right);
            nodes.push((level, i, h));
            row.push(h);
        }
        levels.push((next_lo, row));
        (lo, hi) = (next_lo, next_hi);
    }
    let root = levels[depth].1[0];
    let frontier = (0..=depth)
        .filter(|level| end >> level & 1 == 1)
        .map(|level| {
            let index = (end >> level) - 1;
            let (lo, row) = &levels[level];
            if index >= *lo {
                row[(index - lo) as usize]
            } else {
                old[level].expect("an old complete subtree is on the old frontier")
            }
        })
        .collect();
    Appended { leaves, nodes, root, frontier }
}

/// Append the TxOuts with canonical encodings `encodings` to a tree of `size` leaves whose
/// frontier is `frontier`. Returns (leaf hashes, TxOut index keys, node keys, node hashes,
/// root hash, new frontier), the nodes being every rewritten node of level >= 1 in key
/// order. Keys and hashes come as separate lists (no tuple per record: the caller zips
/// them into LMDB lazily, which keeps the cyclic GC quiet). ValueError for no encodings,
/// a frontier of the wrong shape, or a tree deeper than MAX_DEPTH.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn ledger_merkle_append<'py>(
    py: Python<'py>,
    size: u64,
    frontier: Vec<Bound<'py, PyBytes>>,
    encodings: Vec<Bound<'py, PyBytes>>,
) -> PyResult<(
    Bound<'py, PyList>,
    Bound<'py, PyList>,
    Bound<'py, PyList>,
    Bound<'py, PyList>,
    Bound<'py, PyBytes>,
    Bound<'py, PyList>,
)> {
    if encodings.is_empty() {
        return Err(PyValueError::new_err("no TxOuts to append"));
    }
    let end = size
        .checked_add(encodings.len() as u64)
        .filter(|&end| depth_for(end) <= MAX_DEPTH)
        .ok_or_else(|| PyValueError::new_err("the tree would be deeper than 48 levels"))?;
    if frontier.len() != size.count_ones() as usize {
        return Err(PyValueError::new_err(format!(
            "a tree of {size} leaves has a frontier of {} nodes, got {}",
            size.count_ones(),
            frontier.len()
        )));
    }
    let mut old: Vec<Option<Hash>> = vec![None; 64];
    let mut given = frontier.iter();
    for (level, slot) in old.iter_mut().enumerate() {
        if size >> level & 1 == 1 {
            let node = given.next().expect("counted above").as_bytes();
            *slot = Some(node.try_into().map_err(|_| {
                PyValueError::new_err(format!("frontier node must be 32 bytes, got {}", node.len()))
            })?);
        }
    }
    let data: Vec<&[u8]> = encodings.iter().map(|e| e.as_bytes()).collect();
    let done = py.allow_threads(|| append(size, &old, &data));

    let leaves = PyList::new(py, done.leaves.iter().map(|h| PyBytes::new(py, h)))?;
    let keys: Vec<_> = (size..end).map(|i| PyBytes::new(py, &i.to_be_bytes())).collect();
    let keys = PyList::new(py, keys)?;
    let node_keys = PyList::new(
        py,
        done.nodes.iter().map(|(level, index, _)| PyBytes::new(py, &node_key(*level, *index))),
    )?;
    let node_hashes = PyList::new(py, done.nodes.iter().map(|(_, _, h)| PyBytes::new(py, h)))?;
    let frontier = PyList::new(py, done.frontier.iter().map(|h| PyBytes::new(py, h)))?;
    let root = PyBytes::new(py, &done.root);
    Ok((leaves, keys, node_keys, node_hashes, root, frontier))
}

/// The root a membership proof leads to (`MembershipProof.root_for` of the leaf of
/// `encoding`, a TxOut's canonical bytes): the leaf hashed, then each sibling from the leaf
/// up, on the left when that level's index bit is 1. A validator checks one proof per
/// ring member of every tx. ValueError for more than MAX_DEPTH siblings or one that is not
/// 32 bytes. The GIL is kept: a proof is a few microseconds.
#[pyfunction]
fn merkle_root_for<'py>(
    py: Python<'py>,
    encoding: &[u8],
    index: u64,
    siblings: Vec<Bound<'py, PyBytes>>,
) -> PyResult<Bound<'py, PyBytes>> {
    if siblings.len() > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "{} siblings exceed the limit of {MAX_DEPTH}",
            siblings.len()
        )));
    }
    let mut acc = leaf_hash(encoding);
    let mut idx = index;
    for sibling in &siblings {
        let sibling: &Hash = sibling.as_bytes().try_into().map_err(|_| {
            PyValueError::new_err(format!(
                "a sibling hash is 32 bytes, got {}",
                sibling.as_bytes().len()
            ))
        })?;
        acc = if idx & 1 == 1 { node_hash(sibling, &acc) } else { node_hash(&acc, sibling) };
        idx >>= 1;
    }
    Ok(PyBytes::new(py, &acc))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ledger_merkle_append, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_root_for, m)?)?;
    Ok(())
}
