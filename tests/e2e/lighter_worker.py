"""``python -m tests.e2e.lighter_worker <celery arguments>``: ``python -m celery``, with Lighter's
signer library replaced by the tests' wire signer first (``tests/contract/lighter/wire_signer.py``).

The library is an optional native dependency the suite does without; a worker that reads the
fake Lighter's orders needs its auth tokens. The pool's processes are forked from this one and
inherit the stand-ins.
"""

from celery.__main__ import main

from tests.contract.lighter.wire_signer import wire_signer_install

if __name__ == "__main__":
    wire_signer_install()
    main()
