"""Project-wide fixtures for a local EVM (registered in the root conftest via ``pytest_plugins``).

web3 and eth-tester are imported only when a test asks for the chain, so test runs that
never touch it do not pay for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from demo.localchain.chain import LocalChain


@pytest.fixture(scope="session")
def local_chain() -> Iterator[LocalChain]:
    """One chain for the session (py-evm takes about a second to start): use fresh addresses per test."""
    from demo.localchain.chain import LocalChain

    chain = LocalChain()
    try:
        yield chain
    finally:
        chain.stop()
