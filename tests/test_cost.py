"""The cost estimate: DataSync's charge by task mode (per GB, and per execution in Enhanced
mode) and the destination's PUT requests, at rates the flags may change."""

from __future__ import annotations

import json

import pytest

from datasync_multi.cost import GIB, Estimate, Rates
from datasync_multi.plan import make_plan
from datasync_multi.scan import scan

AGENTS = [f"arn:aws:datasync:us-east-1:111122223333:agent/agent-0123456789abcdef{i}" for i in range(2)]


def test_a_hundred_million_small_files_cost_about_500_dollars_of_requests_alone():
    e = Estimate(bytes=100_000_000 * 4096, executions=2, puts=100_000_000, rates=Rates.for_mode("BASIC"))
    assert e.requests == pytest.approx(500.0)
    assert e.datasync == pytest.approx(100_000_000 * 4096 / GIB * 0.0125)


def test_enhanced_mode_pays_per_execution_so_the_number_of_chunks_matters():
    tib = 2 ** 40
    basic = Estimate(tib, 40, 0, Rates.for_mode("BASIC"))
    enhanced = Estimate(tib, 40, 0, Rates.for_mode("ENHANCED"))
    assert basic.total == pytest.approx(1024 * 0.0125)
    assert enhanced.total == pytest.approx(1024 * 0.015 + 40 * 0.55)
    assert Rates.for_mode("ENHANCED", per_gb=0.01, per_execution=0.0, per_1000_puts=0.004) == Rates(0.01, 0.0, 0.004)


def test_a_plan_prices_one_execution_per_scope_and_a_put_per_file_and_directory(tmp_path):
    for d in range(6):
        (tmp_path / "share" / f"d{d}").mkdir(parents=True)
        for f in range(d + 1):
            (tmp_path / "share" / f"d{d}" / f"f{f}").write_bytes(b"x" * 1000 * (f + 1))
    tree = scan(str(tmp_path / "share"), ("",))
    static = make_plan(tree, AGENTS, task_name="T_").with_cost(Rates.for_mode("ENHANCED"))
    dynamic = make_plan(tree, AGENTS, task_name="T_", chunks_per_agent=3).with_cost(Rates.for_mode("ENHANCED"))
    for plan in (static, dynamic):
        assert plan.cost is not None
        assert (plan.cost.executions, plan.cost.puts, plan.cost.bytes) == \
            (len(plan.scopes), plan.total_files + plan.total_dirs, plan.total_bytes)
        written = plan.to_json()["cost_estimate"]
        assert written["estimate"] is True and written["total_usd"] == round(plan.cost.total, 2)
    assert dynamic.cost.executions > static.cost.executions == 2  # type: ignore[union-attr]


def test_the_dry_run_prints_and_writes_the_estimate_at_the_rates_given(tmp_path, in_process):
    (tmp_path / "fsx" / "a").mkdir(parents=True)
    (tmp_path / "fsx" / "a" / "f").write_bytes(b"x" * 2048)
    (tmp_path / "source_file.manifest").write_text("/a\n")
    r = in_process("--mount_path_dir", str(tmp_path / "fsx"), "--dry_run", "--agent_arns", AGENTS[0],
            "--price_per_1000_puts", "1000", "--plan_file", "p.json")
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.startswith("estimated cost")]
    assert len(lines) == 1 and "2 PUTs at $1000 per 1,000" in lines[0] and "an estimate" in lines[0], r.stdout
    assert json.loads((tmp_path / "p.json").read_text())["cost_estimate"]["requests_usd"] == 2.0
