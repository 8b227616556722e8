"""A local EVM served over JSON-RPC: the tests' chain, and the chain ``make run`` starts for deposits.

``chain.LocalChain`` is eth-tester (py-evm) behind a loopback JSON-RPC server; ``contracts/`` holds the
Solidity sources and their committed artifacts; ``devstack`` deploys the tokens and the swap router
``make run`` uses. eth-tester and py-evm come from requirements-dev.txt: import this package only where
those are installed (tests, ``make run``), never from an app.
"""
