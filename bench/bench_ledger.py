"""Ledger throughput (plain script; figures go to bench/RESULTS.md).

    python bench/bench_ledger.py [--quick] [--txos N] [--appends-only] [--reps R]
                                 [--fresh-outputs]

In temporary directories on the same disk, with fsync on (LMDB sync=True, metasync=True):

1. Appends per second for blocks of 1, 100 and 1000 outputs (one write transaction per
   block, every check of `append_block`), and the raw LMDB floor measured in the same run:
   exactly the records those blocks write (same tables, keys, value sizes, same put and
   putmulti calls and flags, same environment flags, one transaction per block) with no
   checking, hashing or encoding. The ratio is ledger / floor; each is the best of R runs
   (default 2), ledger and floor alternating. `--appends-only` stops after this part.
   The blocks come as the chain builder made them, so each TxOut already holds its
   canonical encoding (it was hashed for the Merkle root), as blocks a node formed or
   decoded do; `--fresh-outputs` appends copies whose TxOuts were never encoded (the
   ledger then encodes every output itself).
2. Membership proofs at N TxOuts (default 1M): the ledger is built once with batched
   appends (50 blocks of 1000 outputs per write transaction; build time reported), then
   proofs generated per second (`LedgerDB.membership_proof`, random indices) and verified
   per second (`MembershipProof.verify`), plus `client.rings.sample_ring` per second.
3. Import from an archive: blocks per second into an empty ledger (bundles of 100/1000).

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path

import lmdb

from mcnode.client.rings import sample_ring
from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair
from mcnode.ledger import BlockContents, BlockData, LedgerDB
from mcnode.ledger.archive import LocalDirectory, export_archive, import_archive
from mcnode.ledger.merkle import extend_tree
from mcnode.ledger.merkle_store import node_key
from mcnode.ledger.store import TABLES, int_key
from mcnode.ledger.synthetic import ChainBuilder
from mcnode.transaction.membership import leaf_hash

SK, PK = ed25519_keypair(SeededRandom(1))


def key_images_for(outputs: int) -> int:
    return max(1, outputs // 2)  # a 1-in/2-out transaction per two outputs


def chain(n: int, outputs: int, builder: ChainBuilder | None = None) -> list[BlockData]:
    builder = builder or ChainBuilder(SK)
    return [builder.next(outputs, key_images_for(outputs)) for _ in range(n)]


Puts = list[tuple[str, list[tuple[bytes, bytes]], bool]]


# How `LedgerDB` writes each table: a single `txn.put` for the per-block tables, putmulti
# with overwrite=False (its duplicate check) for the index tables, plain putmulti otherwise.
SINGLE_PUT = {"blocks", "contents", "signatures"}
NO_OVERWRITE = {"key_images", "txo_by_public_key", "txo_by_hash"}


def records(blocks: list[BlockData]) -> list[Puts]:
    """Per block, the (table, items, append) writes `LedgerDB` makes for it."""
    tree: dict[tuple[int, int], bytes] = {}
    size, out = 0, []
    for data in blocks:
        c, idx = data.contents, int_key(data.block.index)
        keys = [int_key(size + i) for i in range(len(c.outputs))]
        leaves = [leaf_hash(o) for o in c.outputs]
        changed, _ = extend_tree(lambda lv, i: tree[(lv, i)], size, leaves)
        tree.update(changed)
        size += len(c.outputs)
        nodes = sorted((node_key(lv, i), h) for (lv, i), h in changed.items() if lv > 0)
        puts: Puts = [
            ("key_images", [(k, idx) for k in c.key_images], False),
            (
                "txo_by_public_key",
                [(o.public_key, k) for o, k in zip(c.outputs, keys, strict=True)],
                False,
            ),
            ("txo_by_hash", list(zip(leaves, keys, strict=True)), False),
            ("tx_outs", [(k, o.to_bytes()) for k, o in zip(keys, c.outputs, strict=True)], True),
            ("merkle", nodes, False),
            ("blocks", [(idx, data.block.to_bytes())], True),
            ("contents", [(idx, BlockContents(c.key_images, ()).to_bytes())], False),
        ]
        if data.signature is not None:
            puts.append(("signatures", [(idx, data.signature.to_bytes())], False))
        out.append(puts)
    return out


def raw_floor(path: Path, per_block: list[Puts]) -> float:
    env = lmdb.open(
        str(path),
        map_size=1 << 32,
        max_dbs=len(TABLES) + 1,
        sync=True,
        metasync=True,
        readahead=False,
    )
    dbs = {name: env.open_db(name.encode()) for name in TABLES}
    start = time.perf_counter()
    for puts in per_block:
        with env.begin(write=True) as txn:
            for table, items, append in puts:
                if table in SINGLE_PUT:
                    txn.put(*items[0], db=dbs[table], append=append)
                else:
                    overwrite = table not in NO_OVERWRITE
                    txn.cursor(db=dbs[table]).putmulti(items, append=append, overwrite=overwrite)
    rate = len(per_block) / (time.perf_counter() - start)
    env.close()
    return rate


def fresh_outputs(blocks: list[BlockData]) -> list[BlockData]:
    """The same blocks with TxOuts that have never been encoded (no cached encoding)."""
    return [
        BlockData(
            d.block,
            BlockContents(
                d.contents.key_images, tuple(map(dataclasses.replace, d.contents.outputs))
            ),
            d.signature,
        )
        for d in blocks
    ]


def ledger_appends(path: Path, blocks: list[BlockData]) -> float:
    with LedgerDB(path, create=True, expected_signers={PK}) as db:
        start = time.perf_counter()
        for data in blocks:
            db.append_block(data)
        return len(blocks) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--txos", type=int, default=1_000_000, help="TxOuts for the proof figures")
    ap.add_argument("--appends-only", action="store_true", help="only part 1 (appends)")
    ap.add_argument("--reps", type=int, default=2, help="alternating runs per append figure")
    ap.add_argument(
        "--fresh-outputs", action="store_true", help="append TxOuts never encoded before"
    )
    args = ap.parse_args()
    quick = args.quick
    txos = 20_000 if quick else args.txos
    figures: dict[str, object] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}"
    }
    if args.fresh_outputs:
        figures["fresh_outputs"] = True
    root = Path(tempfile.mkdtemp(prefix="bench_ledger_", dir=os.environ.get("BENCH_DIR")))
    try:
        # 1. appends vs the raw floor; alternate and keep the best of each (noisy disk)
        for outputs, n in [(1, 1500), (100, 300), (1000, 40)]:
            n = max(n // 10, 5) if quick else n
            blocks = chain(n, outputs)
            puts = records(blocks)
            best_ledger = best_raw = 0.0
            for rep in range(args.reps):
                best_raw = max(best_raw, raw_floor(root / f"raw{outputs}-{rep}", puts))
                appended = fresh_outputs(blocks) if args.fresh_outputs else blocks
                best_ledger = max(best_ledger, ledger_appends(root / f"l{outputs}-{rep}", appended))
            figures[f"append_{outputs}_out_blocks_per_s"] = round(best_ledger, 1)
            figures[f"raw_lmdb_{outputs}_out_blocks_per_s"] = round(best_raw, 1)
            figures[f"append_{outputs}_out_ratio"] = round(best_ledger / best_raw, 3)
            print({k: v for k, v in figures.items() if f"_{outputs}_out" in k}, flush=True)

        if args.appends_only:
            finish(figures)
            return

        # 2. proofs at `txos` TxOuts
        per_block, batch = 1000, 50
        builder = ChainBuilder(SK)
        start = time.perf_counter()
        with LedgerDB(root / "big", create=True) as db:
            made = 0
            while made < txos:
                blocks = chain(batch, per_block, builder)
                db.append_blocks(blocks)
                made += batch * per_block
            figures["build_txos"] = db.num_tx_outs()
            figures["build_s"] = round(time.perf_counter() - start, 1)
            figures["build_data_mb"] = round((root / "big" / "data.mdb").stat().st_size / 2**20)
            print(f"built {db.num_tx_outs()} TxOuts in {figures['build_s']} s", flush=True)
            rng = random.Random(3)
            size, tree_root = db.num_tx_outs(), db.merkle_root()
            indices = [rng.randrange(size) for _ in range(3000 if quick else 20000)]
            start = time.perf_counter()
            proofs = [db.membership_proof(i) for i in indices]
            figures["proof_gen_per_s"] = round(len(indices) / (time.perf_counter() - start))
            outs = [db.get_tx_out(i) for i in indices]
            start = time.perf_counter()
            assert all(p.verify(o, tree_root) for p, o in zip(proofs, outs, strict=True))
            figures["proof_verify_per_s"] = round(len(indices) / (time.perf_counter() - start))
            seeded = SeededRandom(9)
            start = time.perf_counter()
            for i in indices[:1000]:
                sample_ring(db, i, seeded)
            figures["sample_ring_11_per_s"] = round(1000 / (time.perf_counter() - start))
        print({k: v for k, v in figures.items() if "proof" in k or "build" in k}, flush=True)

        # 3. import from an archive
        n = 200 if quick else 3000
        with LedgerDB(root / "src", create=True) as db:
            db.append_blocks(chain(n, 2))
        dest = LocalDirectory(root / "archive", fsync=False)
        with LedgerDB(root / "src", readonly=True) as db:
            export_archive(db, dest)
        with LedgerDB(root / "dst", create=True, expected_signers={PK}) as db:
            start = time.perf_counter()
            assert import_archive(dest, db) == n
            figures["import_2_out_blocks_per_s"] = round(n / (time.perf_counter() - start))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    finish(figures)


def finish(figures: dict[str, object]) -> None:
    for k, v in figures.items():
        print(f"{k:36} {v}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
