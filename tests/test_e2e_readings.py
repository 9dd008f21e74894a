"""Plans copy exactly under every reading of the open filter rules, in the emulator."""

from __future__ import annotations

import json
import os

import pytest

from commands import ROOT
from emulator.harness import Emulator
from emulator.sample import build_sample_share, differences
from sites import EXPORT, SERVER, s3_destination

READINGS = [("component", "crosses", "exclude"), ("prefix", "crosses", "exclude"),
            ("component", "stops", "include"), ("prefix", "stops", "include")]


def awkward_share(root: str) -> None:
    """The sample share, plus siblings whose names extend each other, homes beside their own
    archives, and flat directories (one of names outside the Basic Multilingual Plane and in
    two normal forms): what a string-prefix reading would copy twice."""
    build_sample_share(root)
    weights = {"u1": 2000, "u10": 5, "u100": 2000, "data": 2000, "data2": 5, "data-old": 5, "b": 300, "b2": 300}
    for name, kib in weights.items():  # heavy ones become units of their own beside light extensions
        os.makedirs(os.path.join(root, "siblings", name, "inner"))
        with open(os.path.join(root, "siblings", name, "inner", "f"), "wb") as fh:
            fh.write(b"s" * kib * 1024)
    for i in range(30):
        os.makedirs(os.path.join(root, "homes", f"u{i:04d}"))
        with open(os.path.join(root, "homes", f"u{i:04d}", "mail"), "wb") as fh:
            fh.write(b"m" * 500 * (i % 5 + 1))
        with open(os.path.join(root, "homes", f"u{i:04d}.tar"), "wb") as fh:
            fh.write(b"t" * 700)
    os.makedirs(os.path.join(root, "spool"))
    for i in range(1, 400):
        with open(os.path.join(root, "spool", f"msg{i}"), "wb") as fh:
            fh.write(b"s" * (100 + i))
    os.makedirs(os.path.join(root, "unicode"))  # the last code point, an emoji, 'é' composed and decomposed
    for i, name in enumerate(["\U0010ffff", "\U0010ffff\U0010ffff", "\U0001f600", "\u00e9", "e\u0301", "e"] * 20):
        with open(os.path.join(root, "unicode", f"{name}{i}"), "wb") as fh:
            fh.write(b"u" * 8000 * (i % 7 + 1))  # heavy enough to be cut by name


@pytest.mark.parametrize("match,star,precedence", READINGS)
def test_every_reading_copies_the_share_exactly_once(tmp_path, match, star, precedence):
    share, dest, work = tmp_path / "share", tmp_path / "s3", tmp_path / "work"
    for d in (share, dest, work):
        d.mkdir()
    awkward_share(str(share))
    (work / "source_file.manifest").write_text("/\n")
    extra = ["--match", match, "--star", star, "--precedence", precedence]
    with Emulator().start({f"{SERVER}:{EXPORT}": str(share)}, str(dest), agents=4, phase_delay=0.01,
                          extra_args=extra) as emu:
        dest_loc = s3_destination(emu.client())
        import subprocess
        import sys
        r = subprocess.run([sys.executable, os.path.join(ROOT, "datasync_multi_agents_scheduler.py"),
                            "--log_dir", str(work / "log"), "--task_name", "Mig_", "--nfs_server_name", SERVER,
                            "--sub_dir", EXPORT, "--mount_path_dir", str(share), "--dest_loc", dest_loc,
                            "--source_file", str(work / "source_file.manifest"), "--per_file_cost", "0"],
                           cwd=work, env=emu.env(), capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        plan = json.loads((work / "plan.json").read_text())
        assert len(plan["tasks"]) == 4 and not any(t["excludes"] for t in plan["tasks"])
        arns = [line.strip() for line in (work / "arn_file.txt").read_text().splitlines() if line.strip()]
        done = emu.wait_executions_done(arns, timeout=60)
        assert {e["status"] for e in done.values()} == {"SUCCESS"}
        state = emu.state()
    assert differences(str(share), str(dest / "migration-target" / "share")) == []
    for counted in (state["writes"], state["selections"]):
        assert max(counted.values()) == 1, {p: n for p, n in counted.items() if n > 1}
