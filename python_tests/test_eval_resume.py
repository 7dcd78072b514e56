"""`mumoe eval --resume`: a grid killed after its first job restarts where it stopped, skipping the
finished jobs (same settings), and ends with the records an uninterrupted run writes."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mumoe_ext.cli import main
from helpers_models import tiny_llama, tiny_text, tiny_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume")
    tiny_llama().save_pretrained(path / "model")
    tiny_tokenizer().save_pretrained(path / "model")
    (path / "text.txt").write_text(tiny_text(1500))
    return path


def _argv(setup, out, *extra):
    return ["eval", "--model", str(setup / "model"), "--methods", "dense,magnitude,mumoe",
            "--density", "0.7,0.6,0.5,0.4,0.3", "--text-file", str(setup / "text.txt"),
            "--seqlen", "16", "--max-windows", "2", "--mode", "window,prefix", "--out", str(out),
            "--no-progress", "--threads", "1", *extra]


def _cells(records):
    return {(r["method"], r["density"], r["dataset"], r["mode"]): r["ppl"] for r in records}


def test_killed_grid_resumes_where_it_stopped(setup, tmp_path, capsys):
    out = tmp_path / "r.json"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "mumoe_ext", *_argv(setup, out)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while not out.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # right after the first job's records are written
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    first = json.loads(out.read_text())
    done = {(r["method"], r["density"]) for r in first}
    assert 0 < len(done) < 11, done  # killed mid-grid: 1 + 2 * 5 jobs in all

    assert main(_argv(setup, out, "--resume")) == 0
    printed = capsys.readouterr()
    skipped = [line for line in (printed.out + printed.err).splitlines() if line.startswith("resume:")]
    assert len(skipped) == len(done)
    resumed = json.loads(out.read_text())
    assert len(resumed) == 11 * 2 and len(_cells(resumed)) == 22
    # the finished job's records are the very ones the killed run wrote
    assert all(r in resumed for r in first)

    fresh = tmp_path / "fresh.json"
    assert main(_argv(setup, fresh)) == 0
    assert _cells(json.loads(fresh.read_text())) == _cells(resumed)  # same numbers as never killed


def test_resume_reruns_jobs_whose_settings_changed(setup, tmp_path, capsys):
    out = tmp_path / "r.json"
    first = _argv(setup, out)
    first[first.index("--density") + 1] = "0.5"
    assert main(first) == 0
    capsys.readouterr()
    # the same grid again with another seqlen: nothing is finished with these settings
    argv = _argv(setup, out, "--resume")
    argv[argv.index("--density") + 1] = "0.5"
    argv[argv.index("--seqlen") + 1] = "8"
    assert main(argv) == 0
    assert "resume:" not in capsys.readouterr().out
    records = json.loads(out.read_text())
    assert {r["seqlen"] for r in records} == {8} and len(records) == 3 * 2


def test_resume_needs_out(setup, capsys):
    argv = _argv(setup, "x")
    i = argv.index("--out")
    assert main(argv[:i] + argv[i + 2:] + ["--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_a_pattern_cell_is_not_the_density_cell_of_the_same_fraction():
    # 2:4 keeps half of every row, as density 0.5 does, but is another job: resuming one must not
    # skip the other (records carry density N/M and the pattern).
    from mumoe_ext.eval.resume import cell_key, record_key
    settings = {"model": "m", "seqlen": 8, "max_windows": 1, "seed": 0, "dtype": "float32"}
    half = cell_key(settings, "mumoe", None, 0.5, 16, "WikiText2", "local", "window")
    nm = cell_key(settings, "mumoe", None, "2:4", 16, "WikiText2", "local", "window")
    assert half != nm
    record = {"model": "m", "method": "mumoe", "calib": None, "density": 0.5, "pattern": "2:4",
              "dataset": "WikiText2", "mode": "window", "seqlen": 8, "max_windows": 1, "seed": 0,
              "dtype": "float32", "nsamples": None, "source": "local"}
    assert record_key(record) == nm
    assert record_key({**record, "pattern": None}) == half
