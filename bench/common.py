"""What the benchmark scripts share: tables, RESULTS.md, tool installs, timing, an sshfs mount over loopback."""

from __future__ import annotations

import datetime
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
RESULTS = os.path.join(BENCH, "RESULTS.md")


def table(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} CPUs ({cpu or 'unknown model'}), {mem:.0f} GiB RAM, "
            f"Python {sys.version.split()[0]}")


def command_line() -> str:
    return "python3 " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])


def append_results(title: str, body: str) -> None:
    """Print a section and append it, with the command, date and machine, to RESULTS.md."""
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    section = (f"## {title}\n\n`{command_line()}` — {stamp} — {machine()}\n\n{body.rstrip()}\n\n")
    print(section)
    new = not os.path.exists(RESULTS)
    with open(RESULTS, "a", encoding="utf-8") as fh:
        if new:
            fh.write("# Benchmark results\n\nEach script appends its section; the newest run of a "
                     "question is the last section with its title. See README.md for what each measures.\n\n")
        fh.write(section)


def ensure_tool(binary: str, package: str) -> str | None:
    """The tool's path, installing its Debian package when missing; None if that fails."""
    found = shutil.which(binary) or (binary if os.path.isabs(binary) and os.access(binary, os.X_OK) else None)
    if found:
        return found
    print(f"{binary} missing: apt-get install -y {package}", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", package]
    if os.geteuid() != 0:
        cmd = ["sudo", *cmd]
    ok = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode == 0
    if not ok:  # the package lists may be stale or empty
        subprocess.run(cmd[:-4] + ["update", "-qq"] if cmd[0] == "sudo" else ["apt-get", "update", "-qq"],
                       env=env, stdout=subprocess.DEVNULL)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL)
    found = shutil.which(binary) or (binary if os.path.isabs(binary) and os.access(binary, os.X_OK) else None)
    if not found:
        print(f"could not install {package}; install it by hand: apt-get update && apt-get install -y {package}",
              file=sys.stderr)
    return found


def timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return time.perf_counter() - t0, r


DISTURBED = 0.3
"""Cores' worth of CPU that processes other than the measured ones may use during a timed run
before it is taken again (the machine is shared, and a hypervisor's steal counts too)."""


def busy_seconds(steal: bool = True) -> float:
    """CPU seconds the whole machine has spent busy (every core), from /proc/stat; with
    ``steal``, also the time the hypervisor gave its CPUs to other machines."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8 if steal else 7]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None, children: bool = False) -> float:
    """User + system CPU seconds of a running process (and of its waited-for children); 0 if gone."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15 if children else 13]) / os.sysconf("SC_CLK_TCK")


def wait_quiet(others: str) -> None:
    """Wait until no process matching ``others`` (another benchmark) runs and the machine is
    idle (a test suite of another session takes a core or two): its two cores are all there is."""
    t0 = time.monotonic()
    said = False
    while True:
        if subprocess.run(["pgrep", "-f", others], capture_output=True).returncode == 0:
            why = f"{others} to end"
        else:
            busy0 = busy_seconds()
            time.sleep(5)
            cores = (busy_seconds() - busy0) / 5
            if cores < DISTURBED:
                break
            why = f"the machine to be idle ({cores:.1f} cores busy)"
        if not said:
            print(f"  waiting for {why}...", file=sys.stderr, flush=True)
            said = True
        time.sleep(10)
    if said:
        print(f"  waited {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)


def agent_arns(n: int) -> list[str]:
    return [f"arn:aws:datasync:us-east-1:111122223333:agent/agent-{i:017x}" for i in range(1, n + 1)]


# --- sshfs over loopback ------------------------------------------------------------------


class Sshfs:
    """A private sshd on 127.0.0.1 and an sshfs mount of ``path`` through it; with ``delay``
    (seconds), every byte between sshfs and sshd waits that long each way
    (``delay_proxy.py``): a mount far away, where ``tc netem`` is not at hand."""

    def __init__(self, path: str, delay: float = 0.0):
        self.path = path
        self.delay = delay
        self.tmp = tempfile.mkdtemp(prefix="bench-sshfs-")
        self.mnt = os.path.join(self.tmp, "mnt")
        self.sshd: subprocess.Popen | None = None
        self.mounted = False

    def __enter__(self) -> str:
        try:
            return self._start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> str:
        if not os.path.exists("/dev/fuse"):
            raise RuntimeError("/dev/fuse is missing")
        for binary, package in (("sshfs", "sshfs"), ("/usr/sbin/sshd", "openssh-server")):
            if not ensure_tool(binary, package):
                raise RuntimeError(f"{binary} not installed (apt-get install -y {package})")
        t = self.tmp
        for key in ("host_key", "user_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{t}/{key}"], check=True)
        shutil.copy(f"{t}/user_key.pub", f"{t}/authorized_keys")
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
        port = _free_port()
        with open(f"{t}/sshd_config", "w") as fh:
            fh.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {t}/host_key\nPidFile {t}/sshd.pid\n"
                     f"AuthorizedKeysFile {t}/authorized_keys\nPermitRootLogin prohibit-password\n"
                     "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                     "StrictModes no\nSubsystem sftp internal-sftp\n")
        self.sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", f"{t}/sshd_config"],
                                     stdout=subprocess.DEVNULL, stderr=open(f"{t}/sshd.log", "w"))
        for _ in range(50):
            if _listening(port):
                break
            if self.sshd.poll() is not None:
                raise RuntimeError("sshd exited: " + open(f"{t}/sshd.log").read().strip()[-200:])
            time.sleep(0.1)
        os.mkdir(self.mnt)
        opts = (f"IdentityFile={t}/user_key,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,"
                "BatchMode=yes,cache=no,attr_timeout=0,entry_timeout=0,negative_timeout=0,dir_cache=no")
        if self.delay:
            proxy = os.path.join(os.path.dirname(os.path.abspath(__file__)), "delay_proxy.py")
            opts += f",ProxyCommand={sys.executable} {proxy} %h %p {self.delay}"
        r = subprocess.run(["sshfs", "-p", str(port), "-o", opts, f"root@127.0.0.1:{self.path}", self.mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"sshfs mount failed: {r.stdout.strip()[-200:]}")
        self.mounted = True
        self.options = opts.split(",", 4)[-1]
        return self.mnt

    def close(self) -> None:
        if self.mounted:
            for args in (["-u"], ["-uz"]):
                if subprocess.run(["fusermount3", *args, self.mnt], stderr=subprocess.DEVNULL).returncode == 0:
                    break
                time.sleep(1)
            self.mounted = False
        if self.sshd and self.sshd.poll() is None:
            self.sshd.terminate()
            try:
                self.sshd.wait(5)
            except subprocess.TimeoutExpired:
                self.sshd.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0
