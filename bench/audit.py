#!/usr/bin/env python3
"""Question 11: does the audit compare a share with its destination as fast as `rclone check`, in less memory?

    python3 bench/audit.py [--files 1000000] [--small 100000] [--flat 1000000] [--s3-files 100000]
                           [--check-files 20000] [--shards 128x4000] [--reps 3] [--parts 1,2,3,4,5]
                           [--old DIR]

Side by side in one run, on the same pair of trees for every tool:

1. **Correctness.** A skewed tree of ``--check-files`` files plus awkward names (NFC beside
   NFD, spaces, ``%``, ``+``, a newline, 255-byte names, ``a`` beside ``a-b``, a 20-level
   chain and a chain of 255-byte directory names), an exact copy, and a copy with seeded
   differences (files missing, extra, truncated, touched; awkward names among each). The
   audit must report exactly the seeded set, and nothing for the exact copy; rclone's counts
   (``rclone check --size-only``, both ways so that it sees extras) are printed beside it.
   Mounted, then through S3 on the emulator (``--metadata_sample all``).
2. **A mounted destination.** ``datasync_multi_audit.py --dest_mount`` at its default threads
   (one per side on a local disk) and at 4, against ``rclone check --size-only --one-way``
   (its defaults: 8 checkers) and ``rclone sync --dry-run`` (rclone's comparison of size and
   modification time, both ways, which is what the audit checks; ``rclone check`` without
   ``--size-only`` hashes every file's content, not its time). Trees: skewed ``--files``
   (1M files, 100k dirs), skewed ``--small`` and flat ``--flat`` (one directory: the audit
   sorts it in runs on disk). The destination is a hardlinked copy (``cp -al``): a real
   tree of its own directories whose files share the source's inodes, so sizes and times
   match and it costs no disk.
3. **An S3 destination.** The skewed ``--s3-files`` tree stored in the emulator's S3 root as
   a copy would lie there (hardlinks keep each file's mtime, which the emulator serves as
   ``file-mtime``), an S3 location on it, then ``--dest_loc`` with ``--metadata_sample`` 0,
   1000 and all against ``rclone check --size-only --one-way --fast-list`` on the same
   bucket (the emulator refuses a ListObjectsV2 with a Delimiter). The emulator's own CPU
   time is shown apart: it serves both tools' listings on the same two cores.
4. **Memory.** The audit's peak RSS at each size and shape, beside the audit of an empty
   source, and the bytes one entry of a sorted listing holds, for the 100-million-file
   estimate (bench/README.md).
5. **Memory with threads reading ahead.** ``--shards`` sibling directories (a sharded data
   set) audited at ``--read-ahead-workers`` threads (16 is the default on NFS): each thread
   reads directories ahead of the walk.

Every timed run is under ``/usr/bin/time -v`` (wall, peak RSS, CPU), after a warm-up of the
page cache (one ``rclone check``), ``--reps`` times with the tools alternating; the table gives the median wall
time and the largest peak. Before each timed round it waits until no other benchmark
(``bench/live.py``) runs, and takes a run again when other processes kept the machine busy
meanwhile. ``--old DIR`` adds another checkout's audit (e.g. ``git archive`` of an earlier
commit) to the mounted tables. Trees go to ``bench/work/`` and are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata

from common import DISTURBED, REPO, append_results, busy_seconds, cpu_seconds, ensure_tool, machine, table
from common import wait_quiet as common_wait_quiet
from gen_tree import WORK, ensure_tree

BUCKET, PREFIX = "migration-target", "share"
OTHER_BENCHES = "bench/live.py"
AWKWARD = ["with space.txt", "100%.txt", "a+b.txt", "%2F+%20 mixed.txt", "tab\there.txt",
           unicodedata.normalize("NFC", "café.txt"), unicodedata.normalize("NFD", "café.txt"), "new\nline.txt",
           "snow\u2603.txt", "y" * 255, "a-b", "a.b", "a0"]
LONG_CHAIN = 2
"""Directories of 255-byte names in a chain, with a 255-byte file at the bottom: under S3's
1,024-byte limit on a key (longer paths are no object, so an S3 destination cannot hold them)."""


# --- running -------------------------------------------------------------------------------


NO_WAIT = False
"""--no-wait: a trial run of the script, whose timings mean nothing."""


def wait_quiet() -> None:
    if not NO_WAIT:
        common_wait_quiet(OTHER_BENCHES)


def timed(cmd: list[str], ok: tuple[int, ...] = (0,), emulator_pid: int | None = None, **kw) -> dict:
    """Run under /usr/bin/time -v: wall s, peak RSS bytes, CPU s, and the emulator's CPU s meanwhile.
    Taken again (up to 3 times) when the rest of the machine was busy meanwhile."""
    for attempt in range(4):
        run = _timed_once(cmd, ok, emulator_pid, **kw)
        if NO_WAIT or run["others"] / run["wall"] < DISTURBED:
            return run
        if attempt == 3:
            print(f"  kept a run disturbed by {run['others'] / run['wall']:.2f} cores", file=sys.stderr, flush=True)
            return run
        print(f"  disturbed: other processes used {run['others'] / run['wall']:.2f} cores; again",
              file=sys.stderr, flush=True)
        wait_quiet()
    raise AssertionError("unreachable")


def _timed_once(cmd: list[str], ok: tuple[int, ...], emulator_pid: int | None, **kw) -> dict:
    emu0 = cpu_seconds(emulator_pid)
    busy0 = busy_seconds()
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, errors="replace", **kw)
    wall = time.perf_counter() - t0
    busy = busy_seconds() - busy0
    if r.returncode not in ok:
        raise RuntimeError(f"{cmd[:3]} exited {r.returncode}: {r.stdout[-800:]} {r.stderr[-1500:]}")

    def field(name: str) -> float:
        return float(re.search(rf"{name}: ([\d.]+)", r.stderr).group(1))
    cpu = field(r"User time \(seconds\)") + field(r"System time \(seconds\)")
    emu_cpu = cpu_seconds(emulator_pid) - emu0 if emulator_pid else 0.0
    return {"wall": wall, "rss": field(r"Maximum resident set size \(kbytes\)") * 1024, "cpu": cpu,
            "emu_cpu": emu_cpu, "others": max(busy - cpu - emu_cpu, 0.0),
            "rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr}


def audit_cmd(src: str, work: str, *extra: str, checkout: str = REPO) -> list[str]:
    """The audit of ``src`` (the whole mount in scope), no ledger nor plan, report in ``work``; the
    checkout's own script (which imports that checkout's package)."""
    manifest = os.path.join(work, "source_file.manifest")
    with open(manifest, "w") as fh:
        fh.write("/\n")
    return [sys.executable, os.path.join(checkout, "datasync_multi_audit.py"), "--mount_path_dir", src,
            "--source_file", manifest,
            "--report", os.path.join(work, "audit.jsonl"), "--arn_file", os.path.join(work, "arn_file.txt"),
            "--plan_file", os.path.join(work, "no-plan.json"), "--log_dir", work, *extra]


def report_of(work: str) -> tuple[list[dict], dict]:
    with open(os.path.join(work, "audit.jsonl"), encoding="utf-8") as fh:
        lines = [json.loads(line) for line in fh]
    return lines[:-1], lines[-1]["summary"]


def rclone_env(work: str) -> dict[str, str]:
    conf = os.path.join(work, "rclone.conf")
    open(conf, "w").close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # AWS_CA_BUNDLE breaks plain http
    return dict(env, RCLONE_CONFIG=conf)


def s3_remote(url: str, location: str) -> str:
    """rclone's on-the-fly S3 remote for the emulator (connection-string syntax; values holding ':' quoted):
    ListObjectsV2 (for another provider rclone asks ListObjects, which the emulator does not serve),
    keys URL-encoded so that a newline comes back exact."""
    return (f':s3,provider=Other,endpoint="{url}",access_key_id=x,secret_access_key=x,region=us-east-1,'
            f"force_path_style=true,list_version=2,list_url_encode=true:{BUCKET}/{location}")


def run_rounds(tools: list[tuple[str, list[str], dict]], reps: int, label: str) -> dict[str, list[dict]]:
    """``rclone check`` once to warm the cache (it lstats every entry of both sides, or lists the whole
    bucket), then ``reps`` rounds, the tools alternating."""
    out: dict[str, list[dict]] = {name: [] for name, _, _ in tools}
    for name, cmd, kw in tools:
        if name.startswith("rclone check"):
            _timed_once(cmd, (0,), None, **{k: v for k, v in kw.items() if k != "emulator_pid"})
    for rep in range(reps):
        wait_quiet()
        order = tools if rep % 2 == 0 else tools[::-1]
        for name, cmd, kw in order:
            out[name].append(timed(cmd, **kw))
            print(f"  [{label}] {name}: {out[name][-1]['wall']:.1f} s, {out[name][-1]['rss'] / 2**20:.0f} MiB",
                  file=sys.stderr, flush=True)
    return out


def summary_row(runs: list[dict]) -> dict:
    return {"wall": statistics.median(r["wall"] for r in runs), "rss": max(r["rss"] for r in runs),
            "cpu": statistics.median(r["cpu"] for r in runs), "emu_cpu": statistics.median(r["emu_cpu"] for r in runs),
            "walls": [r["wall"] for r in runs]}


# --- trees ---------------------------------------------------------------------------------


def linked_copy(src: str, dst: str) -> str:
    """A hardlinked copy of ``src`` at ``dst`` (made once; ``dst + '.done'`` marks it finished)."""
    if os.path.exists(dst + ".done") and os.path.isdir(dst):
        return dst
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    subprocess.run(["cp", "-al", src, dst], check=True)
    open(dst + ".done", "w").close()
    return dst


def shards_tree(dirs: int, files: int) -> str:
    """``dirs`` sibling directories of ``files`` empty files each (a sharded data set), made once."""
    base = os.path.join(WORK, f"audit-shards-{dirs}x{files}")
    tree = os.path.join(base, "tree")
    if os.path.exists(base + ".done"):
        return tree
    if os.path.exists(base):
        shutil.rmtree(base)
    for d in range(dirs):
        shard = os.path.join(tree, f"shard-{d:04d}")
        os.makedirs(shard)
        for f in range(files):
            os.close(os.open(os.path.join(shard, f"part-{f:06d}.bin"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    open(base + ".done", "w").close()
    return tree


def tree_stats(root: str) -> dict:
    """Entries, directories, the largest directory and the deepest level (also warms the cache)."""
    entries = dirs = largest = deepest = 0
    stack = [(root, 0)]
    while stack:
        path, depth = stack.pop()
        dirs += 1
        deepest = max(deepest, depth)
        n = 0
        with os.scandir(path) as it:
            for e in it:
                n += 1
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, depth + 1))
        entries += n
        largest = max(largest, n)
    return {"entries": entries, "dirs": dirs, "largest": largest, "depth": deepest}


def add_awkward(root: str) -> list[str]:
    """Awkward names under ``root/odd``; their paths relative to ``root``, files only."""
    odd = os.path.join(root, "odd")
    os.makedirs(os.path.join(odd, "a", "inner"))
    files = []
    for i, name in enumerate(AWKWARD):
        with open(os.path.join(odd, name), "wb") as fh:
            fh.write(b"x" * (i * 37 + 1))
        files.append(os.path.join("odd", name))
    with open(os.path.join(odd, "a", "inner", "f"), "w") as fh:
        fh.write("f")
    files.append("odd/a/inner/f")
    os.makedirs(os.path.join(odd, "empty"))
    chain = os.path.join("odd", *[f"level{i:02d}" for i in range(20)])
    long = os.path.join("odd", *[chr(ord("A") + i) * 255 for i in range(LONG_CHAIN)])
    for deep in (chain, long):
        os.makedirs(os.path.join(root, deep))
        for name in ("bottom.txt", "z" * 255):
            with open(os.path.join(root, deep, name), "w") as fh:
                fh.write("bottom")
            files.append(os.path.join(deep, name))
    return files


def seed_differences(src: str, dst: str, per_kind: int, awkward: list[str], rng: random.Random) -> set:
    """Differences made in ``dst``, a hardlinked copy of ``src`` (links broken before any change):
    the set of (category, '/'-led path) the audit must report."""
    files = sorted(os.path.relpath(os.path.join(d, n), src) for d, _, names in os.walk(src) for n in names
                   if not d.startswith(os.path.join(src, "odd")))
    dirs = sorted(os.path.relpath(d, src) for d, _, _ in os.walk(src) if not d.startswith(os.path.join(src, "odd")))
    picked = rng.sample(files, 3 * per_kind)
    missing = picked[:per_kind] + [awkward[6], awkward[2], [f for f in awkward if "level19" in f][0]]
    truncated = picked[per_kind:2 * per_kind] + [awkward[0], awkward[9], [f for f in awkward if "AAA" in f][-1]]
    touched = picked[2 * per_kind:] + [awkward[7], awkward[10], awkward[1]]
    extra = [os.path.join(d, f"extra-{i}.dat") if d != "." else f"extra-{i}.dat"
             for i, d in enumerate(rng.sample(dirs, per_kind))]
    extra += ["odd/extra 100%+.txt", "odd/a/inner/new\nextra", "odd/" + unicodedata.normalize("NFD", "é") * 50]
    for rel in missing:
        os.remove(os.path.join(dst, rel))
    for rel, change in [(r, "size") for r in truncated] + [(r, "time") for r in touched]:
        st = os.lstat(os.path.join(src, rel))
        path = os.path.join(dst, rel)
        os.remove(path)  # break the hard link: the source must not change
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.ftruncate(fd, st.st_size // 2 if change == "size" else st.st_size)
        os.close(fd)
        mtime = st.st_mtime_ns - (3600 * 10**9 if change == "time" else 0)
        os.utime(path, ns=(st.st_atime_ns, mtime))
    for rel in extra:
        with open(os.path.join(dst, rel), "w") as fh:
            fh.write("extra")
    return ({("missing", "/" + r) for r in missing} | {("extra", "/" + r) for r in extra}
            | {("size differs", "/" + r) for r in truncated}
            | {("modification time differs", "/" + r) for r in touched})


def correctness_trees(n: int, per_kind: int) -> tuple[str, str, str, set, int]:
    """(source, exact copy, seeded copy, expected differences, awkward files), made once."""
    base = os.path.join(WORK, f"audit-check-f{n}")
    src, exact, seeded = (os.path.join(base, x) for x in ("src", "exact", "seeded"))
    marker = os.path.join(base, "expected.json")
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as fh:
            data = json.load(fh)
        return src, exact, seeded, {tuple(x) for x in data["expected"]}, data["awkward"]
    if os.path.exists(base):
        shutil.rmtree(base)
    os.makedirs(base)
    subprocess.run(["cp", "-al", ensure_tree("skewed", n, seed=1), src], check=True)
    awkward = add_awkward(src)
    subprocess.run(["cp", "-al", src, exact], check=True)
    subprocess.run(["cp", "-al", src, seeded], check=True)
    expected = seed_differences(src, seeded, per_kind, awkward, random.Random(7))
    with open(marker, "w", encoding="utf-8") as fh:
        json.dump({"expected": sorted(expected), "awkward": len(awkward)}, fh, ensure_ascii=False)
    return src, exact, seeded, expected, len(awkward)


# --- 1. correctness ------------------------------------------------------------------------


RCLONE_SIGNS = {"+": "missing", "-": "extra", "*": "differ", "!": "error"}


def rclone_counts(cmd: list[str], env: dict, work: str) -> dict[str, int]:
    combined = os.path.join(work, "combined.txt")
    if os.path.exists(combined):
        os.remove(combined)
    r = subprocess.run([*cmd, "--combined", combined], capture_output=True, text=True, errors="replace", env=env)
    failed = "Failed to" in r.stderr and not re.search(r"last error was: \d+ (differences found|files missing)",
                                                       r.stderr)
    if r.returncode not in (0, 1) or failed or not os.path.exists(combined):
        raise RuntimeError(f"{cmd} exited {r.returncode}: {r.stderr[-1500:]}")
    counts = dict.fromkeys(RCLONE_SIGNS.values(), 0)
    with open(combined, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line[:1] in RCLONE_SIGNS:
                counts[RCLONE_SIGNS[line[0]]] += 1
    counts["duplicates"] = r.stderr.count("Duplicate object found")
    return counts


def judge(found: set, expected: set) -> str:
    if found == expected:
        return "exactly the seeded set" if expected else "nothing, rightly"
    return f"{len(expected - found)} seeded not reported, {len(found - expected)} reported not seeded"


def part_correctness(a, rows_out: list[str]) -> None:
    src, exact, seeded, expected, awkward = correctness_trees(a.check_files, a.seed_per_kind)
    by_cat = {c: sum(1 for cat, _ in expected if cat == c) for c in
              ("missing", "extra", "size differs", "modification time differs")}
    rows = [["", "seeded copy", "(what was seeded)", "", *by_cat.values(), 0, ""]]
    with tempfile.TemporaryDirectory(prefix="bench-audit-", dir=WORK) as work:
        env = rclone_env(work)
        for name, dst in (("exact copy", exact), ("seeded copy", seeded)):
            cmd = audit_cmd(src, work, "--dest_mount", dst)
            r = subprocess.run(cmd, capture_output=True, text=True)
            diffs, summ = report_of(work)
            found = {(d["category"], d["path"]) for d in diffs}
            want = expected if name == "seeded copy" else set()
            rows.append(["mounted", name, "audit", r.returncode, *(_count(found, c) for c in by_cat),
                         len(found) - sum(_count(found, c) for c in by_cat), judge(found, want)])
            rc = rclone_counts(["rclone", "check", "--size-only", src, dst], env, work)
            rows.append(["mounted", name, "rclone check --size-only", "", rc["missing"], rc["extra"], rc["differ"],
                         "not compared", rc["error"], _rclone_note(rc, by_cat if name == "seeded copy" else None)])
        s3_root = os.path.join(work, "s3")
        os.makedirs(os.path.join(s3_root, BUCKET))
        for name, dst in (("exact", exact), ("seeded", seeded)):
            subprocess.run(["cp", "-al", dst, os.path.join(s3_root, BUCKET, name)], check=True)
        with start_emulator(s3_root) as emu:
            for name, loc in (("exact copy", "exact"), ("seeded copy", "seeded")):
                arn = location(emu, "/" + loc)
                r = subprocess.run(audit_cmd(src, work, "--dest_loc", arn, "--metadata_sample", "all"),
                                   capture_output=True, text=True, env=emu.env())
                diffs, summ = report_of(work)
                found = {(d["category"], d["path"]) for d in diffs}
                want = expected if name == "seeded copy" else set()
                rows.append(["S3 (emulator)", name, "audit, `--metadata_sample all`", r.returncode,
                             *(_count(found, c) for c in by_cat), len(found) - sum(_count(found, c) for c in by_cat),
                             judge(found, want)])
                rc = rclone_counts(["rclone", "check", "--size-only", "--fast-list", src, s3_remote(emu.url, loc)],
                                   env, work)
                rows.append(["S3 (emulator)", name, "rclone check --size-only --fast-list", "", rc["missing"],
                             rc["extra"], rc["differ"], "not compared", rc["error"],
                             _rclone_note(rc, by_cat if name == "seeded copy" else None)])
    header = ["destination", "copy", "tool", "exit", "missing", "extra", "size differs", "mtime differs", "other",
              "verdict"]
    rows_out.append(
        f"Source: skewed {a.check_files:,}-file tree plus {awkward} awkward files (NFC beside NFD, space, `%`, `+`, "
        "tab, newline, 255-byte names, `a` beside `a-b`/`a.b`/`a0`, a 20-level chain, a chain of "
        f"{LONG_CHAIN} 255-byte directory names). Seeded: " + ", ".join(f"{v} {k}" for k, v in by_cat.items())
        + " (awkward names among each). rclone is run both ways (no `--one-way`) so that it can see extras; "
        "it compares sizes only.\n\n" + table(header, rows))


def _count(found: set, category: str) -> int:
    return sum(1 for c, _ in found if c == category)


def _rclone_note(rc: dict, seeded: dict | None) -> str:
    notes = []
    if seeded is not None:
        off = [f"{label} {rc[key]} (seeded {seeded[cat]})" for label, key, cat in
               (("missing", "missing", "missing"), ("extra", "extra", "extra"), ("size", "differ", "size differs"))
               if rc[key] != seeded[cat]]
        notes.append(f"{seeded['modification time differs']} changed times not seen"
                     + ("; " + ", ".join(off) if off else "; sizes, missing and extra as seeded"))
    elif any(rc[k] for k in RCLONE_SIGNS.values()):
        notes.append("differences in an exact copy")
    else:
        notes.append("nothing, rightly")
    if rc["duplicates"]:
        notes.append(f"{rc['duplicates']} 'duplicate object' notices (NFC and NFD spellings taken as one name)")
    return "; ".join(notes)


class start_emulator:
    """The emulator over an S3 root (no NFS exports: only DescribeLocationS3 and S3 are asked)."""

    def __init__(self, s3_root: str) -> None:
        from emulator.harness import Emulator
        self.emu = Emulator()
        self.s3_root = s3_root

    def __enter__(self):
        return self.emu.start({}, self.s3_root, agents=1)

    def __exit__(self, *exc):
        self.emu.stop()
        return False


def location(emu, subdirectory: str) -> str:
    return emu.client().create_location_s3(
        S3BucketArn=f"arn:aws:s3:::{BUCKET}", Subdirectory=subdirectory,
        S3Config={"BucketAccessRoleArn": "arn:aws:iam::111122223333:role/datasync"})["LocationArn"]


# --- 2. mounted ----------------------------------------------------------------------------


def mounted_tools(src: str, dst: str, work: str, workers: list[str], with_sync: bool,
                  old: str | None) -> list[tuple[str, list[str], dict]]:
    env = rclone_env(work)
    tools = []
    for w in workers:
        extra = [] if w == "default" else ["--scan_workers", w]
        label = "audit, default threads (1 per side)" if w == "default" else f"audit, `--scan_workers {w}`"
        tools.append((label, audit_cmd(src, work, "--dest_mount", dst, *extra), {}))
        if old and w == "default":
            tools.append(("`--old` audit, default threads", audit_cmd(src, work, "--dest_mount", dst, checkout=old),
                          {}))
    tools.append(("rclone check --size-only --one-way", ["rclone", "check", "--size-only", "--one-way", src, dst],
                  {"env": env}))
    if with_sync:
        tools.append(("rclone sync --dry-run (size + mtime)", ["rclone", "sync", "--dry-run", src, dst], {"env": env}))
    return tools


def part_mounted(a, trees: list[tuple[str, str, str]], memory: list) -> str:
    out = []
    for label, src, dst in trees:
        stats = tree_stats(src)
        tree_stats(dst)
        with tempfile.TemporaryDirectory(prefix="bench-audit-", dir=WORK) as work:
            if not memory:
                empty_audit(memory, "mounted, empty source and destination", work, "--dest_mount",
                            os.path.join(work, "empty-dest"))
            tools = mounted_tools(src, dst, work, a.workers.split(","), with_sync=True, old=a.old)
            runs = run_rounds(tools, a.reps, label)
            _, summ = report_of(work)
        rows, base = [], summary_row(next(v for k, v in runs.items() if k.startswith("rclone check")))
        for name, rs in runs.items():
            s = summary_row(rs)
            rows.append([name, s["wall"], f"{s['wall'] / base['wall']:.2f}x", s["cpu"], s["rss"] / 2**20,
                         f"{s['rss'] / base['rss']:.2f}x", " / ".join(f"{w:.1f}" for w in s["walls"])])
            if name.startswith("audit, default"):
                memory.append((f"mounted, {label}", stats, s["rss"]))
        out.append(f"**{label}**: {stats['entries']:,} entries in {stats['dirs']:,} directories (largest "
                   f"{stats['largest']:,} entries, {stats['depth']} levels); the audit compared "
                   f"{summ['source_entries']:,} source and {summ['dest_entries']:,} destination entries, "
                   f"{summ['matched']:,} the same.\n\n"
                   + table(["tool", "wall s (median)", "wall / rclone check", "CPU s", "peak RSS MiB",
                            "RSS / rclone check", "each run, s"], rows))
    return ("Destination: a hardlinked copy (`cp -al`) of the source, a real tree of its own directories. Both "
            "sides on the local disk, warm cache. The audit compares every file's size and modification time "
            "and reports extras too; `rclone check --size-only --one-way` compares sizes, one way; `rclone sync "
            "--dry-run` compares sizes and modification times both ways (rclone's own way to compare times).\n\n"
            + "\n\n".join(out))


# --- 3. S3 ---------------------------------------------------------------------------------


def part_s3(a, memory: list) -> str:
    src = ensure_tree("skewed", a.s3_files, seed=1)
    stats = tree_stats(src)
    s3_root = os.path.join(WORK, f"audit-s3-f{a.s3_files}")
    linked_copy(src, os.path.join(s3_root, BUCKET, PREFIX))
    with tempfile.TemporaryDirectory(prefix="bench-audit-", dir=WORK) as work, start_emulator(s3_root) as emu:
        arn = location(emu, "/" + PREFIX)
        pid = emu.proc.pid
        env = emu.env()
        os.makedirs(os.path.join(s3_root, BUCKET, "empty"), exist_ok=True)
        empty_audit(memory, "S3, empty source and location, `--metadata_sample all`", work, "--dest_loc",
                    location(emu, "/empty"), "--metadata_sample", "all", env=env)
        tools = [(f"audit, `--metadata_sample {n}`", audit_cmd(src, work, "--dest_loc", arn, "--metadata_sample", n),
                  {"env": env, "emulator_pid": pid}) for n in a.samples.split(",")]
        if a.old:
            tools.append(("`--old` audit, `--metadata_sample 0`",
                          audit_cmd(src, work, "--dest_loc", arn, "--metadata_sample", "0", checkout=a.old),
                          {"env": env, "emulator_pid": pid}))
        tools.append(("rclone check --size-only --one-way --fast-list",
                      ["rclone", "check", "--size-only", "--one-way", "--fast-list", src, s3_remote(emu.url, PREFIX)],
                      {"env": rclone_env(work), "emulator_pid": pid}))
        runs = run_rounds(tools, a.reps, f"S3 {a.s3_files:,}")
        _, summ = report_of(work)
    rows, base = [], summary_row(runs[tools[-1][0]])
    for name, rs in runs.items():
        s = summary_row(rs)
        rows.append([name, s["wall"], f"{s['wall'] / base['wall']:.2f}x", s["cpu"], s["emu_cpu"], s["rss"] / 2**20,
                     f"{s['rss'] / base['rss']:.2f}x", " / ".join(f"{w:.1f}" for w in s["walls"])])
        if name.startswith("audit"):
            memory.append((f"S3, skewed {a.s3_files:,}, {name.split(', ')[1]}", stats, s["rss"]))
    return (f"Skewed {a.s3_files:,}-file tree ({stats['entries']:,} entries, {stats['dirs']:,} directories, largest "
            f"{stats['largest']:,}), stored in the emulator's S3 root by `cp -al` (each object's `file-mtime` is the "
            "source file's). One ListObjectsV2 per 1,000 keys for both tools; the audit's sample reads one "
            "HeadObject per object on 16 threads. The emulator (Python, on the same 2 cores) serves both; its CPU "
            f"time is apart. Last audit: {summ['source_entries']:,} source and {summ['dest_entries']:,} destination "
            f"entries, {summ['matched']:,} the same, {summ['metadata_checked']:,} times read.\n\n"
            + table(["tool", "wall s (median)", "wall / rclone", "client CPU s", "emulator CPU s", "peak RSS MiB",
                     "RSS / rclone", "each run, s"], rows))


# --- 5. memory with threads reading ahead ---------------------------------------------------


def part_read_ahead(a) -> str:
    """Peak RSS on a sharded tree at 1, 4 and 16 threads (16: the default on NFS): each thread
    reads up to READ_AHEAD directories ahead of the walk."""
    dirs, files = (int(x) for x in a.shards.split("x"))
    src = shards_tree(dirs, files)
    dst = linked_copy(src, src.replace("audit-shards", "audit-copy-shards"))
    stats = tree_stats(src)
    tree_stats(dst)
    with tempfile.TemporaryDirectory(prefix="bench-audit-", dir=WORK) as work:
        tools = [(f"audit, `--scan_workers {w}`", audit_cmd(src, work, "--dest_mount", dst, "--scan_workers", w), {})
                 for w in a.read_ahead_workers.split(",")]
        tools.append(("rclone check --size-only --one-way", ["rclone", "check", "--size-only", "--one-way", src, dst],
                      {"env": rclone_env(work)}))
        runs = run_rounds(tools, a.reps, f"shards {a.shards}")
    rows = []
    for name, rs in runs.items():
        s = summary_row(rs)
        rows.append([name, s["wall"], s["cpu"], s["rss"] / 2**20])
    return (f"{dirs:,} sibling directories of {files:,} empty files ({stats['entries']:,} entries), a hardlinked "
            "copy as the destination, local disk: the threads read directories ahead of the walk as they would "
            "on NFS, where 16 is the default.\n\n" + table(["tool", "wall s (median)", "CPU s", "peak RSS MiB"], rows))


# --- 4. memory -----------------------------------------------------------------------------


PER_ENTRY = r"""
import json, sys, tracemalloc
from datasync_multi.ordered import OrderedWalk
walk = OrderedWalk(sys.argv[1], ("",), workers=1, spill_at=10**9)
tracemalloc.start()
listing = walk._read("")
size, peak = tracemalloc.get_traced_memory()
print(json.dumps({"entries": len(listing.entries), "held": size, "peak": peak}))
"""
"""One directory's sorted listing held in memory (no spill): bytes per entry, held and at the sort's peak."""


def empty_audit(memory: list, label: str, work: str, *args: str, **kw) -> None:
    """The audit of an empty source: what the interpreter, the imports and the clients cost."""
    empty = os.path.join(work, "empty-source")
    os.makedirs(empty, exist_ok=True)
    os.makedirs(os.path.join(work, "empty-dest"), exist_ok=True)
    memory.append((label, {"entries": 0, "dirs": 1, "largest": 0}, timed(audit_cmd(empty, work, *args), **kw)["rss"]))


def part_memory(memory: list, flat: str | None) -> str:
    rows = []
    base = {"mounted": 0.0, "S3": 0.0}
    for label, stats, rss in memory:
        side = label.split(",")[0]
        if not stats["entries"]:
            base[side] = rss
        rows.append([label, stats["entries"], stats["dirs"], stats["largest"], rss / 2**20,
                     (rss - base[side]) / 2**20])
    text = table(["run", "source entries", "directories", "largest directory", "peak RSS MiB",
                  "above the empty audit MiB"], rows)
    if flat:
        r = json.loads(subprocess.run([sys.executable, "-c", PER_ENTRY, flat], capture_output=True, text=True,
                                      check=True, cwd=REPO).stdout)
        text += (f"\n\nOne directory of {r['entries']:,} entries read and sorted in memory (no spill), measured with "
                 f"tracemalloc: {r['held'] / r['entries']:.0f} bytes per entry held, "
                 f"{r['peak'] / r['entries']:.0f} at the sort's peak.")
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=1_000_000, help="the big skewed tree (mounted)")
    p.add_argument("--small", type=int, default=100_000, help="the small skewed tree (mounted), 0 to skip")
    p.add_argument("--flat", type=int, default=1_000_000, help="one directory of this many files (mounted), 0 to skip")
    p.add_argument("--s3-files", type=int, default=100_000, help="the skewed tree behind the emulator's S3 side")
    p.add_argument("--check-files", type=int, default=20_000, help="the correctness tree")
    p.add_argument("--seed-per-kind", type=int, default=100, help="seeded differences of each kind, at scale")
    p.add_argument("--workers", default="default,4", help="audit --scan_workers values (mounted)")
    p.add_argument("--samples", default="0,1000,all", help="audit --metadata_sample values (S3)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--parts", default="1,2,3,4,5")
    p.add_argument("--shards", default="128x4000", help="part 5: directories x files of the sharded tree")
    p.add_argument("--read-ahead-workers", default="1,4,16", help="part 5: audit --scan_workers values")
    p.add_argument("--old", metavar="DIR", help="another checkout's audit beside this one (mounted tables)")
    p.add_argument("--no-wait", action="store_true", help="do not wait for other benchmarks (a trial of the script)")
    a = p.parse_args(argv)
    global NO_WAIT
    NO_WAIT = a.no_wait
    parts = set(a.parts.split(","))
    if not ensure_tool("/usr/bin/time", "time") or not ensure_tool("rclone", "rclone"):
        return 2
    rclone = subprocess.run(["rclone", "version"], capture_output=True, text=True).stdout.splitlines()[0]
    sections, memory = [], []
    if "1" in parts:
        body: list[str] = []
        part_correctness(a, body)
        sections.append("### 1. Correctness\n\n" + body[0])
        print(sections[-1], file=sys.stderr, flush=True)
    if "2" in parts or "4" in parts:
        trees = []
        for shape, n in (("skewed", a.small), ("skewed", a.files), ("flat", a.flat)):
            if n:
                src = ensure_tree(shape, n, seed=1)
                dst = linked_copy(src, os.path.join(WORK, f"audit-copy-{shape}-f{n}"))
                trees.append((f"{shape} {n:,} files", src, dst))
        sections.append("### 2. Mounted destination\n\n" + part_mounted(a, trees, memory))
        print(sections[-1], file=sys.stderr, flush=True)
    if "3" in parts or "4" in parts:
        sections.append("### 3. S3 destination (emulator)\n\n" + part_s3(a, memory))
        print(sections[-1], file=sys.stderr, flush=True)
    if "4" in parts and memory:
        flat = ensure_tree("flat", a.flat, seed=1) if a.flat else None
        sections.append("### 4. The audit's peak memory\n\n" + part_memory(memory, flat))
    if "5" in parts:
        sections.append("### 5. Memory with threads reading ahead\n\n" + part_read_ahead(a))
        print(sections[-1], file=sys.stderr, flush=True)
    body = (f"{rclone}; {machine()}; load average at the end {os.getloadavg()[0]:.2f}. Median of {a.reps} timed "
            "runs after a warm-up, the tools alternating; peak RSS the largest of them.\n\n" + "\n\n".join(sections))
    append_results("11. Audit against rclone check", body)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, REPO)
    sys.exit(main())
