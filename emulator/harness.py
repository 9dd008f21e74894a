"""Start the emulator as a subprocess for tests and demos.

    from emulator.harness import Emulator
    with Emulator().start({"198.51.100.10:/vol1": "/src"}, "/dest") as emu:
        ds = emu.client()
        ...

Control calls use only urllib (stdlib).  ``client()`` (DataSync) and ``s3_client()`` (the
S3 side, over the S3 root) need boto3.

Works the same installed (``pip install``) and from a checkout: the emulator process is
``python -m emulator`` on this interpreter, and it imports the same ``emulator`` package as
this process (see :func:`_child_env`).
"""

from __future__ import annotations

import json
import os
import signal
import site
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request

TERMINAL = ("SUCCESS", "ERROR")


class EmulatorError(RuntimeError):
    pass


def _site_dirs() -> set[str]:
    dirs = [*site.getsitepackages(), site.getusersitepackages(),
            sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return {os.path.realpath(d) for d in dirs}


def uninstalled_checkout() -> str | None:
    """The directory this ``emulator`` package was imported from when that is not where
    installed packages are (an uninstalled checkout, on sys.path as ``python -m`` from the
    checkout puts it): what another process needs on PYTHONPATH to import this very copy."""
    parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return None if os.path.realpath(parent) in _site_dirs() else parent


def _child_env() -> dict[str, str]:
    """This process's environment for ``python -m emulator``. Installed, the child finds the
    package where any installed module is found. Imported from an uninstalled checkout, the
    child gets that directory on PYTHONPATH, so it runs this very copy whatever its working
    directory."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    parent = uninstalled_checkout()
    if parent:
        env["PYTHONPATH"] = parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class Emulator:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self._url: str | None = None
        self.region = "us-east-1"
        self._stderr_chunks: list[bytes] = []
        self._stderr_thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self, exports: dict[str, str], s3_root: str, agents: int = 3,
              phase_delay: float = 0.05, offline_error_delay: float = 1.0,
              region: str = "us-east-1", startup_timeout: float = 20.0,
              extra_args: list[str] | None = None, enhanced_agents: int = 0,
              task_create_delay: float = 0.1, launch_delay: float = 0.0, file_delay: float = 0.0,
              execution_filters: str = "replace",
              agent_bytes_per_second: list[int] | None = None) -> Emulator:
        """Launch ``python -m emulator``; returns self (usable as a context manager).

        ``launch_delay`` and ``file_delay`` are DataSync's per-execution and per-file overheads,
        ``execution_filters`` (``replace`` or ``merge``) how an execution's filters combine with
        its task's, ``agent_bytes_per_second`` each agent's bandwidth in order (0: unlimited)."""
        if self.proc is not None:
            raise EmulatorError("already started")
        self.region = region
        cmd = [sys.executable, "-m", "emulator", "--port", "0", "--agents", str(agents),
               "--s3-root", str(s3_root), "--region", region,
               "--phase-delay", str(phase_delay),
               "--offline-error-delay", str(offline_error_delay),
               "--enhanced-agents", str(enhanced_agents), "--task-create-delay", str(task_create_delay),
               "--launch-delay", str(launch_delay), "--file-delay", str(file_delay),
               "--execution-filters", execution_filters]
        if agent_bytes_per_second:
            cmd += ["--agent-bytes-per-second", ",".join(str(rate) for rate in agent_bytes_per_second)]
        for spec, local in exports.items():
            cmd += ["--export", f"{spec}={local}"]
        cmd += list(extra_args or [])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=_child_env())
        stdout = self.proc.stdout
        assert stdout is not None  # stdout=PIPE: typeshed's Popen cannot know the pipe is there
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        line_box: list[bytes] = []
        reader = threading.Thread(target=lambda: line_box.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(startup_timeout)
        line = line_box[0].decode().strip() if line_box else ""
        if not line.startswith("http://"):
            self.stop()
            raise EmulatorError(f"emulator did not start (first line {line!r}); "
                                f"stderr:\n{self.stderr()}")
        self._url = line
        return self

    def _drain_stderr(self):
        for chunk in iter(lambda: self.proc.stderr.read1(65536), b""):
            self._stderr_chunks.append(chunk)

    def stderr(self) -> str:
        return b"".join(self._stderr_chunks).decode(errors="replace")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, SIGKILL after `timeout`.  Returns the exit code."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if self._stderr_thread is not None:
            self._stderr_thread.join(2)
        for f in (p.stdout, p.stderr):
            if f is None:
                continue
            try:
                f.close()
            except Exception:
                pass
        return p.returncode

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    # ---------------------------------------------------------------- access
    @property
    def url(self) -> str:
        if self._url is None:
            raise EmulatorError("emulator not started")
        return self._url

    def client(self, **config_overrides):
        import boto3
        from botocore.config import Config

        cfg = {"retries": {"mode": "standard", "max_attempts": 10}}
        cfg.update(config_overrides)
        return boto3.session.Session().client(
            "datasync", region_name=self.region, endpoint_url=self.url,
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(**cfg))

    def s3_client(self, **config_overrides):
        """A boto3 S3 client of this emulator's S3 side (``s3api``): path-style, the same dummy
        credentials and region as :meth:`client`, standard retries. Keyword arguments override
        the Config fields."""
        import boto3
        from botocore.config import Config

        cfg = {"s3": {"addressing_style": "path"}, "retries": {"mode": "standard", "max_attempts": 10}}
        cfg.update(config_overrides)
        return boto3.session.Session().client(
            "s3", region_name=self.region, endpoint_url=self.url,
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(**cfg))

    def env(self) -> dict[str, str]:
        """The environment a program needs to reach this emulator through the standard
        chain: this process's, without AWS settings, plus the endpoint and dummy credentials."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ENDPOINT_URL=self.url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_DEFAULT_REGION=self.region, AWS_EC2_METADATA_DISABLED="true")
        return env

    # ------------------------------------------------------------ control API
    def _call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read().decode() or "null")
        except urllib.error.HTTPError as exc:
            raise EmulatorError(f"{method} {path}: HTTP {exc.code} {exc.read().decode()}") from exc

    def state(self) -> dict:
        return self._call("GET", "/_emulator/state")

    def set_agent(self, agent: str, status: str | None = None,
                  bytes_per_second: int | None = None, last_contact_ago: float | None = None) -> dict:
        """agent: agent id, full ARN, name or 1-based index.  0/None bps = unlimited.

        Only the arguments given are changed; pass bytes_per_second=0 to clear a limit.
        ``last_contact_ago`` backdates an OFFLINE agent's LastConnectionTime by that many seconds.
        """
        body: dict[str, str | float] = {}
        if status is not None:
            body["status"] = status
        if bytes_per_second is not None:
            body["bytes_per_second"] = bytes_per_second
        if last_contact_ago is not None:
            body["last_contact_ago"] = last_contact_ago
        return self._call("POST", f"/_emulator/agents/{agent}", body)

    def throttle(self, fraction: float, seed: int = 1) -> dict:
        return self._call("POST", "/_emulator/throttle", {"fraction": fraction, "seed": seed})

    def config(self, **kw) -> dict:
        return self._call("POST", "/_emulator/config", kw)

    def fault(self, operation: str, fault: str = "500", times: int = 1, when: str = "after",
              delay: float = 0.0) -> dict[str, dict]:
        """Lose the answer to the next `times` calls of `operation` (-1: until cleared, 0: clear):
        ``fault`` "500" (InternalException), "drop" (connection closed) or "denied"
        (AccessDeniedException, not retried), ``when`` "after" carrying the call out, "before",
        or "late": carried out ``delay`` seconds after the answer is lost. Returns the faults
        still set, as :meth:`faults`."""
        body = {"operation": operation, "fault": fault, "times": times, "when": when}
        if delay:
            body["delay"] = delay
        return self._call("POST", "/_emulator/faults", body)["faults"]

    def faults(self) -> dict[str, dict]:
        """The faults still set: operation -> {"fault", "times" (left; -1: until cleared), "when"}."""
        return self._call("GET", "/_emulator/faults")["faults"]

    def calls(self) -> dict:
        return self._call("GET", "/_emulator/calls")

    def reset_calls(self) -> dict:
        return self._call("POST", "/_emulator/calls/reset", {})

    def agent_arns(self) -> list[str]:
        return [a["arn"] for a in self.state()["agents"]]

    # --------------------------------------------------------------- waiting
    def wait_for(self, predicate, timeout: float = 10.0, interval: float = 0.02):
        """Poll state() until predicate(state) is truthy; return that value.

        Raises TimeoutError carrying the last state on timeout.
        """
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = self.state()
            value = predicate(last)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s; last state:\n"
                                   + json.dumps(last, indent=1, default=str)[:20000])
            time.sleep(interval)

    def wait_task_created(self, arn: str, timeout: float = 10.0) -> dict:
        """Wait until a task has left CREATING; return its state entry (AVAILABLE, or
        UNAVAILABLE with the creation's error)."""
        return self.wait_for(lambda st: next((t for t in st["tasks"] if t["arn"] == arn and t["status"] != "CREATING"),
                                             None), timeout)

    def execution(self, state: dict, arn: str) -> dict | None:
        for e in state["executions"]:
            if e["arn"] == arn:
                return e
        return None

    def wait_executions_done(self, arns, timeout: float = 20.0) -> dict[str, dict]:
        """Wait until every execution in `arns` is SUCCESS or ERROR; return them by ARN."""
        arns = list(arns)

        def done(st):
            found = {e["arn"]: e for e in st["executions"] if e["arn"] in arns}
            if len(found) == len(arns) and all(e["status"] in TERMINAL for e in found.values()):
                return found
            return None

        return self.wait_for(done, timeout)
