"""`audiomixer bench load` at small scale: 20 clients against an in-process local stack, plus the
report's own arithmetic (percentiles, what counts as a failure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audiomixer_tools.bench.load import LoadReport, Sample, main, percentile


def test_percentile_interpolates_and_handles_one_value() -> None:
    assert percentile([5.0], 99) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(list(reversed(values)), 99) == pytest.approx(99.01)


def test_report_fails_on_5xx_transport_errors_or_lost_objects_but_not_on_429() -> None:
    def report(*samples: Sample) -> LoadReport:
        return LoadReport(clients=1, tenants=1, target="t", samples=list(samples), wall_s=1.0)

    fine = report(Sample("create", 202, 0.01), Sample("mix", 429, 0.002), Sample("list", 200, 0.02))
    assert fine.ok and fine.summary()["rate_limited_429"] == 1
    assert fine.summary()["per_kind"]["mix"]["429"] == 1 and fine.summary()["per_kind"]["mix"]["5xx"] == 0
    assert not report(Sample("create", 500, 0.01)).ok
    assert not report(Sample("status", None, 5.0, "ConnectError: refused")).ok
    lost = report(Sample("create", 202, 0.01))
    lost.unlisted.append("0123")
    assert not lost.ok and lost.summary()["lost"]["count"] == 1


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_twenty_clients_lose_nothing_and_get_no_5xx(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "load.json"
    # Five tenants of four clients: every create fits the concurrent-job limit (5), but once a tenant has
    # four projects queued and one mix, its other mixes must be refused with 429 (counted, not failed).
    code = main(
        [
            "--clients",
            "20",
            "--tenants",
            "5",
            "--seed-seconds",
            "1",
            "--duration-s",
            "120",
            "--max-requests",
            "400",
            "--data-dir-out",
            str(tmp_path / "stack"),
            "--json",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    summary = json.loads(out.read_text())
    assert code == 0, printed
    assert summary["ok"] and summary["server_errors_5xx"] == 0 and summary["transport_errors"] == 0
    assert not summary["timed_out"] and not summary["budget_exhausted"]
    kinds = summary["per_kind"]
    assert kinds["create"]["requests"] == 20 and kinds["create"]["2xx"] == 20, kinds["create"]
    assert kinds["status"]["requests"] == 60 and kinds["status"]["2xx"] == 60
    assert kinds["list"]["2xx"] == 20
    assert kinds["mix"]["requests"] == 20 and kinds["mix"]["5xx"] == 0
    assert kinds["mix"]["2xx"] >= 5 and kinds["mix"]["429"] >= 1, kinds["mix"]
    assert kinds["mix"]["2xx"] + kinds["mix"]["429"] == 20
    assert summary["rate_limited_429"] == kinds["mix"]["429"]
    assert summary["projects_created"] == 20 and summary["mixes_created"] == kinds["mix"]["2xx"]
    assert summary["lost"]["count"] == 0 and summary["verify_errors"] == []
    assert sum(summary["final_status"]["project"].values()) == 20
    assert sum(summary["final_status"]["mix"].values()) == summary["mixes_created"]
    for kind in kinds.values():
        assert 0 < kind["p50_ms"] <= kind["p95_ms"] <= kind["p99_ms"] <= kind["max_ms"]
    assert summary["throughput_rps"] > 0
    assert "req/s" in printed and "p95 ms" in printed
