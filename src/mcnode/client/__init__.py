"""Client side: talk to a validator (gRPC + the enclave's Noise session) and build payments."""
