"""Rebuild the committed local-chain contract artifacts (``<Name>.json``: abi + bytecode) from the sources.

Needs the npm ``solc`` compiler (no Solidity download works offline); see README.md.
Usage: ``python demo/localchain/contracts/build.py /tmp/solc/node_modules/.bin/solcjs``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTRACTS = (
    "TestToken",
    "TestContractWallet",
    "TestSwapRouter",
    "TestOstiumTradingStorage",
    "TestOstiumTrading",
)
EVM_VERSION = "cancun"


def standard_input() -> dict[str, object]:
    return {
        "language": "Solidity",
        "sources": {f"{name}.sol": {"content": (HERE / f"{name}.sol").read_text()} for name in CONTRACTS},
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": 200},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
        },
    }


def main(solcjs: str) -> None:
    # A by-hand build step: the compiler is the one its caller names on the command line.
    # solcjs's stdout is written to a file, not a pipe: node exits before a pipe drains, and
    # the answer of more than 64 KiB (several contracts) came back cut short.
    with tempfile.TemporaryFile("w+") as answer:
        subprocess.run(  # noqa: S603
            [solcjs, "--standard-json"],
            input=json.dumps(standard_input()),
            stdout=answer,
            text=True,
            check=True,
        )
        answer.seek(0)
        text = answer.read()
    output = json.loads(text[text.index("{") :])
    errors = [e for e in output.get("errors", []) if e["severity"] == "error"]
    if errors:
        sys.exit("\n".join(e["formattedMessage"] for e in errors))
    version = subprocess.run(  # noqa: S603
        [solcjs, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    for name in CONTRACTS:
        compiled = output["contracts"][f"{name}.sol"][name]
        artifact = {
            "contractName": name,
            "compiler": f"solcjs {version}",
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": 200},
            "abi": compiled["abi"],
            "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
            "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
        }
        (HERE / f"{name}.json").write_text(json.dumps(artifact, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "solcjs")
