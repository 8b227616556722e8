"""``make run``: set up and start web, worker and beat (and later the feed) on one machine.

Starts an embedded Redis when ``REDIS_URL`` is not set, migrates, starts the local EVM chain
(``manage.py localchain``: test tokens, a swap router, a funded developer account; skipped
with ``LOCAL_CHAIN=0``), seeds the demo data, prints the URLs, then runs the Procfile under
honcho. Ctrl-C stops every process it started, Redis last so that workers can finish their
warm shutdown. The Procfile's web tier is ``marqetfi.webserver``: one daphne process per
core on one port (``WEB_PROCESSES`` overrides the count).

honcho puts each app process in a session of its own, so a process whose honcho wrapper
died could outlive it. This launcher therefore makes itself the "subreaper" of everything
it starts (Linux): orphans are re-parented to it, and it ends whatever is still running
before it exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import psutil

from marqetfi.embedded import EmbeddedRedis
from marqetfi.webserver import web_processes_default

if TYPE_CHECKING:
    from demo.localchain.devstack import DevStack

BASE_DIR = Path(__file__).resolve().parents[1]
_PR_SET_CHILD_SUBREAPER = 36
LOCAL_CHAIN_START_SECONDS = 90.0


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, check=True)  # noqa: S603


def _become_subreaper() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _end_descendants(keep: set[int], grace_seconds: float = 10.0) -> None:
    """Terminate every process below this one except ``keep``; kill what does not stop."""
    descendants = [p for p in psutil.Process().children(recursive=True) if p.pid not in keep]
    for process in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(descendants, timeout=grace_seconds)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def _start_local_chain() -> tuple[subprocess.Popen[bytes], DevStack]:
    """Start ``manage.py localchain`` and wait until it has written its state file.

    It runs in a session of its own so that Ctrl-C does not reach it: it stops after the
    processes that use it, with the other descendants.
    """
    # Imported here: the state file's path comes from the settings, configured in main().
    from demo.localchain.devstack import STATE_FILE, devstack_state_read

    STATE_FILE.unlink(missing_ok=True)  # left by a run that was killed: it describes no chain
    command = [sys.executable, "manage.py", "localchain", "--state-file", str(STATE_FILE)]
    if port := os.environ.get("LOCAL_CHAIN_PORT"):
        command += ["--port", port]
    process = subprocess.Popen(command, cwd=BASE_DIR, start_new_session=True)  # noqa: S603
    deadline = time.monotonic() + LOCAL_CHAIN_START_SECONDS
    while not STATE_FILE.exists():
        if process.poll() is not None:
            raise SystemExit(
                f"The local chain exited ({process.returncode}); see above. "
                "Set LOCAL_CHAIN=0 to run without it, or LOCAL_CHAIN_PORT for another port."
            )
        if time.monotonic() > deadline:
            raise SystemExit(f"The local chain did not start within {LOCAL_CHAIN_START_SECONDS:.0f} s.")
        time.sleep(0.2)
    return process, devstack_state_read(STATE_FILE)


def _print_urls(port: int, web_processes: int, chain: DevStack | None) -> None:
    base = f"http://127.0.0.1:{port}"
    local_chain = ""
    if chain is not None:
        lifi = f"  LI-FI sim  {chain.lifi_url}\n" if chain.lifi_url else ""
        tokens = ", ".join(f"{symbol} {token.address}" for symbol, token in chain.tokens.items())
        local_chain = (
            f"  Chain RPC  {chain.rpc_url}  (chain id {chain.chain_id}; router {chain.router})\n"
            f"{lifi}"
            f"  Tokens     {tokens}\n"
            f"  Dev wallet {chain.developer_address}\n"
            f"             key {chain.developer_key}\n"
            "             DEVELOPMENT ONLY: a publicly known key, never use it on a real network.\n"
            "  Test USDC  .venv/bin/python -m demo.localchain.send "
            "--to 0xYOUR_ADDRESS --token USDC --amount 100\n"
        )
    print(
        "\nMarqetFi is starting:\n"
        f"  API        {base}/api/v1/  (health: {base}/api/v1/health)\n"
        f"  API docs   {base}/api/docs/\n"
        f"  Admin      {base}/admin/\n"
        f"  WebSocket  ws://127.0.0.1:{port}/ws\n"
        f"  Metrics    {base}/metrics\n"
        f"  Web        {web_processes} daphne process(es) on one port (WEB_PROCESSES; default 1 per core)\n"
        f"{local_chain}"
        "Press Ctrl-C to stop everything.\n",
        flush=True,
    )


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marqetfi.settings.base")
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    # The Procfile names daphne and celery; they live next to this interpreter.
    venv_bin = Path(sys.executable).parent
    os.environ["PATH"] = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    port = int(os.environ.get("PORT", "8000"))
    # Fixed here so that the banner and the Procfile's web tier agree.
    web_processes = web_processes_default()
    os.environ["WEB_PROCESSES"] = str(web_processes)
    _become_subreaper()

    redis: EmbeddedRedis | None = None
    honcho: subprocess.Popen[bytes] | None = None

    def stop_gracefully(signum: int, frame: FrameType | None) -> None:
        if honcho is not None and honcho.poll() is None:
            honcho.send_signal(signal.SIGINT)

    try:
        if not os.environ.get("REDIS_URL"):
            redis = EmbeddedRedis()
            os.environ["REDIS_URL"] = redis.start()
            print(f"Embedded Redis on {os.environ['REDIS_URL']}", flush=True)
        _manage("migrate", "--noinput")
        chain: DevStack | None = None
        if os.environ.get("LOCAL_CHAIN", "1") != "0":
            _, chain = _start_local_chain()
        _manage("seed_demo")
        _print_urls(port, web_processes, chain)
        honcho = subprocess.Popen(  # noqa: S603
            [str(venv_bin / "honcho"), "start", "-f", "Procfile", "-p", str(port)], cwd=BASE_DIR
        )
        # Ctrl-C reaches honcho directly (same terminal group); SIGTERM/SIGHUP to us are passed on.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, stop_gracefully)
        signal.signal(signal.SIGHUP, stop_gracefully)
        returncode = honcho.wait()
        return 0 if returncode in (0, 130) else returncode  # 130: stopped with Ctrl-C, as asked
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        keep = {redis.process.pid} if redis is not None and redis.process is not None else set()
        _end_descendants(keep)
        if redis is not None:
            redis.stop()


if __name__ == "__main__":
    sys.exit(main())
