"""Our two commands run as a user runs them, from the checkout's top-level scripts, with no AWS
reachable: what the command-line tests share."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "datasync_multi_agents_scheduler.py")


def offline_env(tmp_path):
    """An environment in which any AWS call fails fast: no credentials, a dead endpoint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_DEFAULT_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true", AWS_MAX_ATTEMPTS="1")
    return env


def run(tmp_path, *args, env=None, script=SCRIPT, **popen):
    return subprocess.run([sys.executable, script, "--log_dir", str(tmp_path / "log"), *args],
                          capture_output=True, text=True, env=env or offline_env(tmp_path), cwd=tmp_path, timeout=120,
                          **popen)


def file_size_limit(limit: int):
    """A ``preexec_fn`` after which the process cannot write past ``limit`` bytes of any file
    (EFBIG): what a full disk does to a write, without root. SIGXFSZ is ignored, as Python
    does, so the write fails rather than the process dying."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return apply


def flag_help(help_text: str) -> dict[str, str]:
    """Each flag's help in an argparse --help, joined onto one line."""
    out: dict[str, str] = {}
    flag = None
    for line in help_text.splitlines():
        if line.startswith("  -"):
            flag = line.split()[0].rstrip(",")
            out[flag] = ""
        elif not line.strip() or not line.startswith(" "):
            flag = None
        if flag:
            out[flag] += " " + line.strip()
    return {k: " ".join(v.split()) for k, v in out.items()}
