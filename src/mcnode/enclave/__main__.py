"""`python -m mcnode.enclave`: the enclave process (`server`), the entry module of the
measured code (`measure.ENTRY`)."""

import sys

from mcnode.enclave.server import main

if __name__ == "__main__":
    sys.exit(main())
