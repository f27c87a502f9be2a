"""Glue for the workflow's ``script:`` files: logging to the rule's log file and one-line errors.

Nothing here imports Snakemake; the scripts pass in the ``snakemake`` object they are given.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable

from discaflow.errors import InputError


def run_rule(snakemake, body: Callable[[], None]) -> None:
    """Run ``body`` with logging sent to the rule's log (and stderr); user errors exit with one line."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if snakemake.log:
        handlers.append(logging.FileHandler(str(snakemake.log[0]), mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True)
    try:
        body()
    except InputError as exc:
        logging.getLogger("discaflow").error("%s", exc)
        print(f"discaflow: error: {exc}", file=sys.stderr)
        sys.exit(2)
