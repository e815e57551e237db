"""Concurrent invocations in separate processes share one quota and never exceed it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, set_limit, sqs_event, vid

pytestmark = pytest.mark.integration

WORKERS = 4
FILES_PER_WORKER = 150  # 4 x 150 = 600 files asked for against a limit of 400
LIMIT = 400


def test_concurrent_invocations_never_exceed_the_daily_limit(stack, monkeypatch, tmp_path: Path):
    set_limit(stack, monkeypatch, LIMIT)
    all_files = set()
    paths = []
    for w in range(WORKERS):
        vids = [vid(w * 1000 + i) for i in range(FILES_PER_WORKER)]
        for v in vids:
            stack.polyv.add_video(v)
            all_files.add((v, 1))
        # 10 messages of 15 vids each, like a full SQS batch
        bodies = [{"vids": vids[i : i + 15], "brIndexes": [1]} for i in range(0, FILES_PER_WORKER, 15)]
        event = sqs_event(*bodies, ids=[f"w{w}-m{i}" for i in range(len(bodies))])
        path = tmp_path / f"event-{w}.json"
        path.write_text(json.dumps(event))
        paths.append(path)

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions" / "prewarm")]),
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.invoke_worker", str(p)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in paths
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    accepted = stack.polyv.accepted_files()
    day = stack.polyv.today()
    assert len(accepted) == LIMIT  # exactly the limit: nothing over it, and no quota wasted
    assert len(set(accepted)) == LIMIT
    assert stack.quota_used(day) == LIMIT == stack.polyv.used(stack.userid, day)
    assert "can't submit more than 2000 files one day" not in stack.polyv.answers()
    # nothing lost: every message with a file that was not submitted is handed back
    handed_back = {f["itemIdentifier"] for r in results for f in r["batchItemFailures"]}
    accepted_set = set(accepted)
    for w in range(WORKERS):
        for m in range(10):
            files = {(vid(w * 1000 + i), 1) for i in range(m * 15, m * 15 + 15)}
            if not files <= accepted_set:
                assert f"w{w}-m{m}" in handed_back
