"""The two commands as the package holds them: main(argv) returns the exit code, and the
log goes beside the scripts in a checkout, else under the current directory."""

import os

from datasync_multi import cli, watcher_command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_in_a_checkout_the_log_is_beside_the_scripts():
    assert cli.default_log_dir() == os.path.join(ROOT, "log")
    assert cli.default_log_dir(os.path.join(ROOT, "datasync_multi")) == os.path.join(ROOT, "log")


def test_installed_the_log_is_under_the_current_directory(tmp_path, monkeypatch):
    site_packages = tmp_path / "lib" / "site-packages"
    (site_packages / "datasync_multi").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert cli.default_log_dir(str(site_packages / "datasync_multi")) == str(work / "log")


def test_main_returns_the_exit_code_and_says_why_on_one_line(tmp_path, capsys):
    assert watcher_command.main(["--arn_file", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1

