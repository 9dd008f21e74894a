"""The whole flow on the local emulator, no AWS account: plan, transfer, lose an agent, fail over, compare.

Run it with ``make demo`` (or ``python3 -m emulator.demo``). Exit 0 only if the
destination equals the source and no path was written twice.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

from .harness import Emulator
from .sample import build_sample_share, differences, digest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER, EXPORT = "198.51.100.10", "/vol1"


def say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def progress(emu: Emulator, arns: list[str]) -> str:
    by_arn = {e["arn"]: e for e in emu.state()["executions"]}
    parts = []
    for arn in arns:
        e = by_arn.get(arn)
        if e:
            c = e["counters"]
            parts.append(f"{e['agent'][-2:]}:{e['status']}"
                         f"({c.get('BytesTransferred', 0) // 1024}/{c.get('EstimatedBytesToTransfer', 0) // 1024} KiB)")
    return "  ".join(parts)


def run_script(env: dict, work: str, *args: str, stream: bool = True) -> int:
    cmd = [sys.executable, *args, "--log_dir", os.path.join(work, "log")]
    print("$ " + " ".join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in args), flush=True)
    return subprocess.run(cmd, cwd=work, env=env, stdout=None if stream else subprocess.DEVNULL).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=os.path.join(ROOT, "demo-run"), help="scratch directory (recreated)")
    args = ap.parse_args(argv)
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    share, s3 = os.path.join(work, "share"), os.path.join(work, "s3")
    for d in (share, s3):
        os.makedirs(d)
    build_sample_share(share, scale=3)
    with open(os.path.join(work, "source_file.manifest"), "w") as fh:
        fh.write("# the whole export\n/\n")
    say(f"a sample share of {len(digest(share))} entries in {share}")

    with Emulator().start({f"{SERVER}:{EXPORT}": share}, s3, agents=3, phase_delay=0.3,
                          offline_error_delay=1.0) as emu:
        env = emu.env()
        say(f"local DataSync emulator at {emu.url} with 3 agents")
        dest = emu.client().create_location_s3(
            S3BucketArn="arn:aws:s3:::demo-bucket", Subdirectory="/migrated",
            S3Config={"BucketAccessRoleArn": "arn:aws:iam::111122223333:role/datasync"})["LocationArn"]
        print(f"destination location (S3 on local disk): {dest}")
        lost = emu.agent_arns()[0]
        emu.set_agent(lost, bytes_per_second=150_000)  # so we can catch it mid-transfer

        say("the scheduler: scan, plan, one task per agent, start")
        code = run_script(env, work, os.path.join(ROOT, "datasync_multi_agents_scheduler.py"),
                          "--task_name", "Demo_", "--nfs_server_name", SERVER, "--sub_dir", EXPORT,
                          "--mount_path_dir", share, "--dest_loc", dest, "--source_file", "source_file.manifest",
                          "--max_depth", "3")
        if code != 0:
            print(f"scheduler failed with exit code {code}")
            return 1
        with open(os.path.join(work, "arn_file.txt")) as fh:
            arns = [line.strip() for line in fh if line.strip()]

        say("executions progressing (agent:status(bytes done/estimated))")
        mine = next(e["arn"] for e in emu.state()["executions"] if e["agent"] == lost)

        def copying(st):
            e = next(x for x in st["executions"] if x["arn"] == mine)
            print("  " + progress(emu, arns), flush=True)
            return e["status"] == "TRANSFERRING" and e["counters"].get("BytesTransferred", 0) > 0

        emu.wait_for(copying, timeout=120, interval=0.5)
        say(f"agent {lost.rsplit('/', 1)[-1]} goes OFFLINE mid-transfer")
        emu.set_agent(lost, status="OFFLINE", bytes_per_second=0)
        emu.wait_for(lambda st: next(x for x in st["executions"] if x["arn"] == mine)["status"] == "ERROR",
                     timeout=60, interval=0.2)
        print("  " + progress(emu, arns))

        say("the HA watcher moves the failed share to a healthy agent, then ends by itself")
        code = run_script(env, work, os.path.join(ROOT, "datasync_agent_ha.py"), "--arn_file", "arn_file.txt",
                          "--timeout_sec", "2", "--offline_threshold_sec", "0", "--html", "run.html")
        if code != 0:
            print(f"watcher ended with exit code {code}")
            return 1
        print(f"a picture of the run, redrawn at each check: {os.path.join(work, 'run.html')}")

        say("compare destination with source")
        dest_dir = os.path.join(s3, "demo-bucket", "migrated")
        diff = differences(share, dest_dir)
        twice = {p: n for p, n in emu.state()["writes"].items() if n > 1}

        say("the audit: the whole share against the bucket, through the S3 API (ListObjectsV2, HeadObject)")
        audit = [os.path.join(ROOT, "datasync_multi_audit.py"), "--mount_path_dir", share, "--dest_loc", dest,
                 "--source_file", "source_file.manifest", "--arn_file", "arn_file.txt", "--metadata_sample", "all"]
        if run_script(env, work, *audit) != 0:
            print("DEMO FAILED: the audit found differences")
            return 1
        removed = sorted(f for f in digest(share) if f.endswith(".dat"))[0]
        os.rename(os.path.join(dest_dir, removed), os.path.join(work, "kept-aside"))
        say(f"the audit again, with /{removed} taken out of the destination: it must name it and its carrier")
        code = run_script(env, work, *audit)
        os.rename(os.path.join(work, "kept-aside"), os.path.join(dest_dir, removed))
        if code != 7:
            print(f"DEMO FAILED: the audit did not report the file taken out (exit {code})")
            return 1
    if diff or twice:
        print("\n".join(diff + [f"written {n} times: {p}" for p, n in twice.items()]))
        print("DEMO FAILED: the destination differs from the source")
        return 1
    print(f"destination equals source: {len(digest(share))} entries (names, sizes, content hashes, "
          f"symlink targets, empty directories); no path written twice")
    return 0


if __name__ == "__main__":
    t0 = time.monotonic()
    code = main()
    print(f"(demo took {time.monotonic() - t0:.0f} s; exit {code})")
    sys.exit(code)
