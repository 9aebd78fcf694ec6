import os
import tempfile
from pathlib import Path

import pytest

from bigseg.synth import SynthParams, synthesize

# keep torch and BLAS from oversubscribing the 2 CI cores when tests start clusters
os.environ.setdefault("OMP_NUM_THREADS", "1")
# ... and give each pytest-xdist worker (with every process it starts) cores of its own: bigseg sizes its threads
# by the cores it may run on (cluster.cpu_count: the affinity mask, as under taskset or a batch job), so two
# workers no longer each run two threads on the same two cores, which made small ops wait at OpenMP barriers
_WORKER, _WORKERS = os.environ.get("PYTEST_XDIST_WORKER", ""), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKER.startswith("gw") and _WORKERS > 1 and hasattr(os, "sched_setaffinity") and os.environ.get(
        "BIGSEG_TEST_PIN", "1") != "0":
    _cores = sorted(os.sched_getaffinity(0))
    if len(_cores) >= _WORKERS:
        os.sched_setaffinity(0, _cores[int(_WORKER[2:]) % _WORKERS :: _WORKERS])
# progress lines (every 10 s when stderr is not a terminal) are off unless a test turns them on
os.environ.setdefault("BIGSEG_PROGRESS", "0")
# ONNX exports of checkpoints go to a cache folder of the test session, not the user's
os.environ.setdefault("BIGSEG_CACHE", tempfile.mkdtemp(prefix="bigseg-test-cache-"))


@pytest.fixture(scope="session")
def slab_png(tmp_path_factory) -> Path:
    """A small synthetic slab (700 x 1300, so that ingest uses two strips) with its truth, as PNG."""
    d = tmp_path_factory.mktemp("slab")
    synthesize(d / "slab.png", SynthParams(700, 1300, seed=5))
    return d / "slab.png"


# ---------------------------------------------------------------------------------------------------------
# The reliability table: tests record what they tried with ``record_property("reliability", (kind, case,
# outcome))``; with BIGSEG_RELIABILITY_TABLE=FILE the session writes them, pass or fail, as a Markdown table
# (the README's "Reliability" section is this file).

_RELIABILITY_ROWS: list[tuple[str, str, str, str]] = []


def pytest_runtest_logreport(report):
    """Each test's result as it is reported: in the one process without pytest-xdist, and with it in the
    controller too (the workers send it their reports, user properties included)."""
    if report.when != "call":
        return
    for name, value in report.user_properties:
        if name == "reliability":
            kind, case, expected = value
            _RELIABILITY_ROWS.append((kind, case, expected, "passed" if report.passed else "FAILED"))


def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get("BIGSEG_RELIABILITY_TABLE")
    if not target or not _RELIABILITY_ROWS or hasattr(session.config, "workerinput"):  # an xdist worker: the
        return  # controller, which saw every worker's reports, writes the table
    rows = sorted(_RELIABILITY_ROWS, key=lambda r: ({"bad input": 0, "fault": 1, "security": 2}.get(r[0], 3), r[1]))
    counts = {k: sum(1 for r in rows if r[0] == k) for k in dict.fromkeys(r[0] for r in rows)}
    lines = ["| kind | what was tried | what happened (asserted) | result |", "|---|---|---|---|"]
    lines += [f"| {k} | {c} | {e} | {r} |" for k, c, e, r in rows]
    summary = ", ".join(f"{n} {k} cases" for k, n in counts.items())
    passed = sum(1 for r in rows if r[3] == "passed")
    note = ("Every bad-input case runs the real command beside a finished store and report and asserts: exactly "
            "one line on stderr starting `bigseg: error:`, exit status 2, no traceback, both byte-identical "
            "afterwards, no partial output left, and (pickle) no payload run.")
    Path(target).write_text(f"{summary}; {passed} of {len(rows)} passed. {note}\n\n" + "\n".join(lines) + "\n")
