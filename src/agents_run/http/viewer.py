"""The run viewer at ``/``: one page of plain HTML and JavaScript (viewer.html beside this file,
no build step) that starts a run, watches it through ``EventSource`` and cancels it."""

from __future__ import annotations

import functools
from importlib.resources import files


@functools.cache
def viewer_html() -> str:
    return files("agents_run.http").joinpath("viewer.html").read_text(encoding="utf-8")
