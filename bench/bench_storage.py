"""What a validator's disk holds and how often it syncs: figures for sizing a disk.

    python bench/bench_storage.py LEDGER_DIR [LEDGER_DIR ...]

For each ledger (e.g. a node's `ledger/` after `mcnode localnet --dir D` or
`bench_localnet.py --keep D`): blocks, TxOuts and key images; the LMDB pages in use per
table (not the file size, which includes free pages and the map's growth); and bytes per
block, per TxOut and per million TxOuts. Syncs per block are measured separately with
strace on a running validator (see bench/RESULTS.md, "storage").
"""

from __future__ import annotations

import sys
from pathlib import Path

import lmdb

from mcnode.ledger.db import LedgerDB
from mcnode.ledger.store import TABLES


def table_bytes(path: Path) -> dict[str, int]:
    env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=len(TABLES) + 1, subdir=True)
    try:
        out = {}
        with env.begin() as txn:
            for name in TABLES:
                st = txn.stat(env.open_db(name.encode(), txn=txn, create=False))
                pages = st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
                out[name] = pages * st["psize"]
        return out
    finally:
        env.close()


def main(dirs: list[str]) -> None:
    for d in dirs:
        path = Path(d)
        with LedgerDB(path, readonly=True) as led:
            blocks = led.num_blocks()
            outs = images = 0
            for i in range(blocks):
                contents = led.get_block_contents(i)
                outs += len(contents.outputs)
                images += len(contents.key_images)
        sizes = table_bytes(path)
        used = sum(sizes.values())
        file_size = (path / "data.mdb").stat().st_size
        print(f"{path}: {blocks} blocks, {outs} TxOuts, {images} key images")
        print(f"  LMDB pages in use {used / 1024:.0f} KiB (data.mdb {file_size / 1024:.0f} KiB)")
        for name, b in sorted(sizes.items(), key=lambda kv: -kv[1]):
            print(f"    {name:24s} {b / 1024:8.0f} KiB")
        per_block = sum(sizes.get(t, 0) for t in ("blocks", "signatures", "contents")) / blocks
        per_out = sum(
            sizes.get(t, 0) for t in ("tx_outs", "merkle", "txo_by_hash", "txo_by_public_key")
        ) / max(1, outs)
        per_image = sizes.get("key_images", 0) / max(1, images)
        print(
            f"  per block {per_block:.0f} B (header, signature, contents index); per TxOut "
            f"{per_out:.0f} B (output, Merkle nodes, two indexes) = {per_out:.0f} MB per "
            f"million TxOuts; per key image {per_image:.0f} B"
        )


if __name__ == "__main__":
    main(sys.argv[1:] or sys.exit(__doc__))
