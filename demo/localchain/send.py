"""Send test tokens (or ETH) from the local chain's developer account, without Django:

    .venv/bin/python -m demo.localchain.send --to 0xYOUR_ADDRESS --token USDC --amount 100

Reads the running chain from ``var/localchain.json`` (written by ``make run``) and prints the
transaction hash, ready for ``POST /api/v1/deposits``.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from demo.localchain.devstack import STATE_FILE, devstack_send, devstack_state_read

SEND_COMMAND = ".venv/bin/python -m demo.localchain.send"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SEND_COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--to", required=True, help="recipient address (0x...)")
    parser.add_argument("--token", default="USDC", help="USDC, USDT or ETH (default USDC)")
    parser.add_argument("--amount", required=True, help="whole tokens, e.g. 100 or 0.5")
    parser.add_argument("--state-file", type=Path, default=STATE_FILE)
    args = parser.parse_args(argv)
    try:
        amount = Decimal(args.amount)
    except InvalidOperation:
        parser.error(f"--amount {args.amount!r} is not a number")
    try:
        stack = devstack_state_read(args.state_file)
    except FileNotFoundError:
        parser.error(f"no local chain is running (no {args.state_file}): start `make run` first")
    symbol = args.token.upper()
    try:
        tx_hash = devstack_send(stack=stack, to=args.to, symbol=symbol, amount=amount)
    except KeyError:
        parser.error(f"unknown token {symbol}: use one of {', '.join([*stack.tokens, stack.native_symbol])}")
    except ValueError as exc:
        parser.error(str(exc))
    sys.stdout.write(tx_hash + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
