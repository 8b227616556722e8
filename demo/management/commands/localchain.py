from __future__ import annotations

import dataclasses
import importlib
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from demo.localchain.chain import LocalChain
from demo.localchain.devstack import (
    OUTPUT_SYMBOL,
    STATE_FILE,
    DevStack,
    devstack_deploy,
    devstack_state_write,
)
from demo.localchain.send import SEND_COMMAND

LIFI_SIMULATOR_MODULE = "demo.lifi_simulator"


class Command(BaseCommand):
    help = (
        "Start a local EVM chain with test USDC/USDT, a swap router and a funded developer account; "
        "describe it in the state file and serve until SIGTERM/SIGINT (make run starts it)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8545, help="JSON-RPC port (0: any free port)")
        parser.add_argument(
            "--block-seconds", type=float, default=2.0, help="mine an empty block this often (0: never)"
        )
        parser.add_argument("--state-file", type=Path, default=STATE_FILE)
        parser.add_argument(
            "--lifi-port", type=int, default=8546, help="port of the LI-FI simulator, when it is installed"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        state_file: Path = options["state_file"]
        stop = threading.Event()

        def request_stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        chain = LocalChain(port=options["port"])
        simulator: Any = None
        try:
            stack = devstack_deploy(chain)
            if options["block_seconds"] > 0:
                chain.start_block_timer(options["block_seconds"])
            simulator = _lifi_simulator(stack, options["lifi_port"])
            if simulator is not None:
                stack = dataclasses.replace(stack, lifi_url=simulator.start())
            devstack_state_write(stack, state_file)
            self._print_stack(stack, state_file)
            while not stop.wait(1.0):
                pass
        finally:
            state_file.unlink(missing_ok=True)
            if simulator is not None:
                simulator.stop()
            chain.stop()
        self.stdout.write("Local chain stopped.")

    def _print_stack(self, stack: DevStack, state_file: Path) -> None:
        tokens = "\n".join(
            f"  {symbol:<10} {token.address}  ({token.decimals} decimals)"
            for symbol, token in stack.tokens.items()
        )
        state_arg = "" if state_file == STATE_FILE else f" --state-file {state_file}"
        lifi = f"  LI-FI sim  {stack.lifi_url}\n" if stack.lifi_url else ""
        self.stdout.write(
            f"Local chain {stack.rpc_url}  (chain id {stack.chain_id})\n"
            f"{lifi}"
            f"  Router     {stack.router}  (swaps into test {OUTPUT_SYMBOL})\n"
            f"{tokens}\n"
            f"  Developer  {stack.developer_address}\n"
            f"  Key        {stack.developer_key}\n"
            "             DEVELOPMENT ONLY: a publicly known key; never send real funds to it.\n"
            f"  Send test USDC: {SEND_COMMAND}{state_arg} --to 0xYOUR_ADDRESS "
            "--token USDC --amount 100\n"
            f"  State      {state_file}",
        )
        self.stdout.flush()


def _lifi_simulator(stack: DevStack, port: int) -> Any:
    """The LI-FI simulator over this stack's router, when its module is installed; else None."""
    try:
        module = importlib.import_module(LIFI_SIMULATOR_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != LIFI_SIMULATOR_MODULE:
            raise  # the simulator is there but something it needs is missing: say so
        return None
    output = stack.tokens[OUTPUT_SYMBOL]
    return module.LifiSimulator(
        rpc_url=stack.rpc_url,
        router=stack.router,
        output_token=output.address,
        output_decimals=output.decimals,
        port=port,
    )
