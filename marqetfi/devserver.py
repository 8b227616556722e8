"""``make run``: set up and start web, worker and beat (and later the feed) on one machine.

Starts an embedded Redis when ``REDIS_URL`` is not set, migrates, seeds the demo data,
prints the URLs, then runs the Procfile under honcho. Ctrl-C stops every process it
started, Redis last so that workers can finish their warm shutdown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from marqetfi.embedded import EmbeddedRedis

BASE_DIR = Path(__file__).resolve().parents[1]


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, check=True)  # noqa: S603


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marqetfi.settings.base")
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    # The Procfile names daphne and celery; they live next to this interpreter.
    venv_bin = str(Path(sys.executable).parent)
    os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    port = int(os.environ.get("PORT", "8000"))
    redis: EmbeddedRedis | None = None
    if not os.environ.get("REDIS_URL"):
        redis = EmbeddedRedis()
        os.environ["REDIS_URL"] = redis.start()
        print(f"Embedded Redis on {os.environ['REDIS_URL']}", flush=True)
    try:
        _manage("migrate", "--noinput")
        _manage("seed_demo")
        base = f"http://127.0.0.1:{port}"
        print(
            "\nMarqetFi is starting:\n"
            f"  API        {base}/api/v1/  (health: {base}/api/v1/health)\n"
            f"  API docs   {base}/api/docs/\n"
            f"  Admin      {base}/admin/\n"
            f"  WebSocket  ws://127.0.0.1:{port}/ws\n"
            f"  Metrics    {base}/metrics\n"
            "Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        honcho = subprocess.Popen(  # noqa: S603
            [str(Path(venv_bin) / "honcho"), "start", "-f", "Procfile", "-p", str(port)],
            cwd=BASE_DIR,
        )
        while True:
            try:
                return honcho.wait()
            except KeyboardInterrupt:
                # The terminal sent SIGINT to the whole group; honcho is stopping its children.
                honcho.send_signal(signal.SIGINT)
    finally:
        if redis is not None:
            redis.stop()


if __name__ == "__main__":
    sys.exit(main())
