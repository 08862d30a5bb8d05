"""`python bench/tx_verify.py`: the transaction benchmark (see bench_tx.py), whose last line
is one JSON object with at least `verify_tx_per_s` and `build_tx_per_s` (1-in/2-out)."""

from bench_tx import main

if __name__ == "__main__":
    main()
