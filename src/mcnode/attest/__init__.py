"""Remote attestation: SGX-format evidence (ECDSA quotes, version 3, and their
collateral), a simulated quoting enclave and PKI for machines without SGX, and one
verifier for both, `dcap-qvl`, under a policy (trusted measurements, TCB status,
advisories, debug, time).

Layer: beside `crypto/`, below `enclave/` and `client/` (both verify evidence: a peer
enclave inside the enclave process, a wallet before it sends a payment). It imports no
`node/`, opens no socket, and takes the time as an argument.
"""
