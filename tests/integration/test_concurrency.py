"""Concurrent invocations in separate processes share one quota and never exceed it; what does
not fit is deferred and prewarmed on the next quota days, every file exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from polyv_prewarm.lambda_context import LocalLambdaContext
from tests.helpers import ROOT, set_limit, shift_days, sqs_event, vid

pytestmark = pytest.mark.integration

WORKERS = 4
FILES_PER_WORKER = 75  # 4 x 75 = 300 files asked for together: 3 x the limit
LIMIT = 100
OVERLAP = 15  # every worker also names the first 15 files of worker 0


def run_workers(paths: list[Path], offset_seconds: float) -> list[dict]:
    """One child process per event, at once, on the stack's clock (``offset_seconds`` ahead)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions" / "prewarm")]),
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.invoke_worker",
                str(p),
                "--offset-seconds",
                str(offset_seconds),
            ],
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
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_three_times_the_quota_at_once_then_drained_exactly_once(stack, monkeypatch, tmp_path: Path):
    set_limit(stack, monkeypatch, LIMIT)
    wanted = set()
    paths = []
    bodies_by_id: dict[str, dict] = {}
    for w in range(WORKERS):
        vids = [vid(w * 1000 + i) for i in range(FILES_PER_WORKER)] + [vid(i) for i in range(OVERLAP)]
        for v in vids:
            stack.polyv.add_video(v)
            wanted.add((v, 1))
        bodies = [{"vids": vids[i : i + 15], "brIndexes": [1]} for i in range(0, len(vids), 15)]
        ids = [f"w{w}-m{i}" for i in range(len(bodies))]
        bodies_by_id.update(zip(ids, bodies, strict=True))
        event = sqs_event(*bodies, ids=ids)
        paths.append(tmp_path / f"event-{w}.json")
        paths[-1].write_text(json.dumps(event))
    assert len(wanted) == WORKERS * FILES_PER_WORKER

    results = run_workers(paths, stack.offset().total_seconds())

    day1 = stack.polyv.today()
    accepted = stack.polyv.accepted_files()
    assert len(accepted) == LIMIT  # exactly the limit on day one
    assert len(set(accepted)) == LIMIT  # nothing twice
    assert stack.quota_used(day1) == LIMIT == stack.polyv.used(stack.userid, day1)
    assert "can't submit more than 2000 files one day" not in stack.polyv.answers()
    # A message is handed back only when another worker held one of its files at that moment
    # (never "duplicate" before the holder has recorded it); its redelivery then finds it done.
    handed_back = sorted(f["itemIdentifier"] for r in results for f in r["batchItemFailures"])
    overlapping = {vid(i) for i in range(OVERLAP)}
    assert all(set(bodies_by_id[m]["vids"]) & overlapping for m in handed_back)
    if handed_back:
        redelivery = tmp_path / "redelivery.json"
        redelivery.write_text(json.dumps(sqs_event(*(bodies_by_id[m] for m in handed_back), ids=handed_back)))
        assert run_workers([redelivery], stack.offset().total_seconds()) == [{"batchItemFailures": []}]
    assert len(stack.polyv.accepted_files()) == LIMIT
    backlog = set(stack.backlog_keys())
    assert {f"{v}#{b}" for v, b in wanted} == backlog | {f"{v}#{b}" for v, b in accepted}
    assert not backlog & {f"{v}#{b}" for v, b in accepted}

    from polyv_prewarm import handler as app

    for day in (1, 2):  # the scheduled drain of the next two quota days
        shift_days(stack, monkeypatch, day)
        summary = app.lambda_handler({"action": "drain", "source": "schedule"}, LocalLambdaContext())
        assert summary["counts"]["submitted"] == LIMIT
    everything = Counter(stack.polyv.accepted_files())
    assert set(everything) == wanted  # nothing lost
    assert max(everything.values()) == 1  # nothing twice
    assert stack.backlog_keys() == []
