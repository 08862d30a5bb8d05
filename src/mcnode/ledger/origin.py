"""The origin block of a sample ledger: N accounts, each paid M outputs of amount A.

Like MobileCoin's sample ledger, this is what a local network starts from: the wallets of
the load generator hold these accounts' keys and spend the outputs. The origin block has
no key images and, by rule, no signature (nothing before it could have elected a signer);
nodes agree on it by its id, which `ledger verify --origin-id` and `ledger import
--origin-id` can pin. Pure: keys and outputs come from the `rng` argument.
"""

from __future__ import annotations

from collections.abc import Sequence

from mcnode.crypto import RandomSource
from mcnode.ledger.block import Block, BlockContents, BlockData
from mcnode.ledger.merkle import MerkleFrontier
from mcnode.transaction.account import AccountKey
from mcnode.transaction.membership import leaf_hash
from mcnode.transaction.txout import create_output


def sample_accounts(n: int, rng: RandomSource) -> list[AccountKey]:
    return [AccountKey.random(rng) for _ in range(n)]


def origin_block(
    accounts: Sequence[AccountKey], outputs_per_account: int, amount: int, rng: RandomSource
) -> BlockData:
    """The unsigned origin block paying each account `outputs_per_account` outputs of
    `amount`, outputs sorted by public key (so their order reveals nothing of who owns
    which)."""
    if not accounts or outputs_per_account < 1:
        raise ValueError("an origin block needs at least one account and one output each")
    outputs = sorted(
        (
            create_output(account.default_address, amount, rng).tx_out
            for account in accounts
            for _ in range(outputs_per_account)
        ),
        key=lambda o: o.public_key,
    )
    frontier = MerkleFrontier()
    for tx_out in outputs:
        frontier.append(leaf_hash(tx_out))
    contents = BlockContents((), tuple(outputs))
    return BlockData(Block.new(None, contents, frontier.root()), contents, None)
