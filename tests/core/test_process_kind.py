"""Which process this is (``application_name``, and the pool of the web processes only)."""

from __future__ import annotations

import pytest

from marqetfi.core.process_kind import process_kind


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (
            [
                "/srv/venv/lib/python3.11/site-packages/daphne/__main__.py",
                "--fd",
                "3",
                "marqetfi.asgi:application",
            ],
            "web",
        ),
        (["/srv/venv/bin/daphne", "marqetfi.asgi:application"], "web"),
        (["/srv/venv/bin/celery", "-A", "marqetfi", "worker", "--concurrency", "4"], "worker"),
        (["/srv/venv/bin/celery", "-A", "marqetfi", "beat", "--scheduler", "x"], "beat"),
        (["manage.py", "pricefeed"], "pricefeed"),
        (["manage.py", "venuefollow"], "venuefollow"),
        (["/srv/venv/bin/pytest", "tests/core"], "pytest"),
        ([], "python"),
    ],
)
def test_the_command_line_tells_the_kind(argv: list[str], kind: str) -> None:
    assert process_kind(argv, {}) == kind


def test_process_kind_in_the_environment_wins() -> None:
    assert process_kind(["manage.py", "shell"], {"PROCESS_KIND": "Web"}) == "web"
