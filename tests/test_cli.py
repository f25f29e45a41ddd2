"""Tests for the ``dpunlearn`` command line (``dpunlearn budget ...``)."""

import json
import math
import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from dpunlearn import cli
from dpunlearn.accounting import ledger as L


def words(text: str) -> list[str]:
    """A command line written as one string (no quoting needed here)."""
    return text.split()


CR_ARGV = words(
    "budget certified-removal --rule paper --sigma 10 --epsilon 1 --delta 1e-4"
)
LANGEVIN_ARGV = words(
    "budget langevin --n 10000 --lam 1e-6 --sigma 0.03 --steps 1000 --requests 3"
    " --delta 1e-4"
)


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def sub(*argv, console=False):
    cmd = (
        [shutil.which("dpunlearn")]
        if console
        else [sys.executable, "-m", "dpunlearn.cli"]
    ) + list(argv)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


# ---------------------------------------------------------------------------
# subprocess: the real entry points
# ---------------------------------------------------------------------------


def test_module_entry_point_json():
    p = sub("budget", "gaussian", "--sigma", "1", "--delta", "1e-5", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["epsilon"] == pytest.approx(4.377178095681137, abs=1e-9)


def test_module_entry_point_bad_delta_is_one_line_error():
    p = sub("budget", "gaussian", "--sigma", "1", "--delta", "1.5")
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dpunlearn: error:")
    assert "delta" in lines[0] and "Traceback" not in p.stderr


@pytest.mark.skipif(
    shutil.which("dpunlearn") is None,
    reason="console script not installed (pip install -e .)",
)
def test_console_script_table_and_missing_ledger(tmp_path):
    p = sub(*CR_ARGV, console=True)
    assert p.returncode == 0, p.stderr
    assert "2.280301" in p.stdout and "3.139025" in p.stdout and "4.385386" in p.stdout
    p = sub("budget", "ledger", str(tmp_path / "nope.jsonl"), console=True)
    assert p.returncode == 1
    assert p.stderr.startswith("dpunlearn: error: ledger not found")
    assert "Traceback" not in p.stderr


# ---------------------------------------------------------------------------
# in process: mechanisms
# ---------------------------------------------------------------------------


def test_gaussian_three_ways(capsys):
    d = run_json(capsys, "budget", "gaussian", "--epsilon", "1", "--delta", "1e-5")
    assert d["sigma_analytic"] == pytest.approx(3.7306316348159374, abs=1e-6)
    d = run_json(capsys, "budget", "gaussian", "--epsilon", "0.5", "--delta", "1e-5")
    assert d["sigma_classic"] > d["sigma_analytic"]
    d = run_json(
        capsys, "budget", "gaussian", "--sigma", "1", "--epsilon", "4.377178095681137"
    )
    assert d["delta"] == pytest.approx(1e-5, rel=1e-6)
    code, _out, err = run(capsys, "budget", "gaussian", "--sigma", "1")
    assert code == 2 and "exactly two" in err


def test_rdp_and_subsampled(capsys):
    d = run_json(capsys, "budget", "rdp", "--gaussian", "4:5", "--delta", "1e-5")
    assert d["epsilon"] == pytest.approx(2.451506386226333, rel=1e-6)  # JSON rdp fold
    d = run_json(
        capsys,
        "budget",
        "rdp",
        "--gaussian",
        "1",
        "--gaussian",
        "2",
        "--gaussian",
        "3",
        "--delta",
        "1e-5",
    )
    assert d["epsilon"] == pytest.approx(5.649975380499999, rel=1e-6)
    d = run_json(
        capsys,
        "budget",
        "subsampled-gaussian",
        "--q",
        "0.01",
        "--sigma",
        "1.1",
        "--steps",
        "1000",
        "--delta",
        "1e-5",
    )
    assert d["epsilon"] == pytest.approx(1.7117701662429012, rel=1e-4)
    code, _, err = run(capsys, "budget", "rdp", "--gaussian", "4:x", "--delta", "1e-5")
    assert code == 2 and "SIGMA[:COUNT]" in err


# ---------------------------------------------------------------------------
# in process: currencies
# ---------------------------------------------------------------------------


def test_certified_removal_json_and_bounds(capsys):
    d = run_json(capsys, *CR_ARGV, "--bounds", "0.5,0.5,0.5,0.5,0.5,0.5,0.5")
    assert d["budget"]["paper"] == pytest.approx(2.2803009464393384, rel=1e-12)
    assert d["supported_removals"] == {"paper": 4, "analytic": 6}
    d = run_json(
        capsys,
        *words("budget certified-removal --rule paper --sigma 10 --epsilon 2 --delta 1e-4"),
    )
    assert "paper" not in d["budget"] and d["budget"]["analytic"] > 0


def test_langevin_sequence_and_kmin(capsys):
    d = run_json(capsys, *LANGEVIN_ARGV)
    eps = [r["epsilon"] for r in d["requests"]]
    assert eps == pytest.approx(
        [0.2908325543767548, 0.43149635515624285, 0.5090403178533414], rel=1e-6
    )
    d = run_json(
        capsys,
        "budget",
        "langevin",
        "--n",
        "11982",
        "--lam",
        "1e-6",
        "--sigma",
        "0.03",
        "--removed",
        "100",
        "--target-epsilon",
        "1",
    )
    assert d["requests"][0]["steps"] == 1997 and d["requests"][0]["certified"]
    code, out, _ = run(capsys, *LANGEVIN_ARGV)
    assert code == 0 and "0.5090403" in out and "request" in out


def test_wsgd_sekhari_d2d_extractor(capsys):
    d = run_json(
        capsys,
        "budget",
        "wsgd",
        "--n",
        "10000",
        "--lam",
        "1e-6",
        "--sigma",
        "0.03",
        "--epochs",
        "50",
        "--requests",
        "3",
        "--delta",
        "1e-4",
        "--target-epsilon",
        "1",
    )
    assert [r["epsilon"] for r in d["requests"]] == pytest.approx(
        [0.20644038058368974, 0.23567277329586078, 0.2397897755458317], rel=1e-6
    )
    assert d["max_requests"] == "inf"
    d = run_json(
        capsys,
        "budget",
        "wsgd",
        "--n",
        "11982",
        "--lam",
        "1e-6",
        "--sigma",
        "0.03",
        "--batch-size",
        "128",
        "--epochs",
        "1",
    )
    assert d["z_b"] == pytest.approx(0.0604, abs=5e-5)
    d = run_json(
        capsys,
        "budget",
        "sekhari",
        "--n",
        "10000",
        "--strong-convexity",
        "0.01",
        "--lipschitz",
        "1",
        "--hessian-lipschitz",
        str(1 / (6 * 3**0.5)),
        "--capacity",
        "1",
        "--epsilon",
        "1",
        "--delta",
        "1e-5",
    )
    assert d["sigma_classic"] == pytest.approx(9.324e-3, rel=5e-4)
    assert d["sigma_analytic"] == pytest.approx(7.180e-3, rel=5e-4)
    d = run_json(
        capsys,
        "budget",
        "d2d",
        "--n",
        "1000",
        "--strong-convexity",
        "0.1",
        "--smoothness",
        "0.35",
        "--lipschitz",
        "1",
        "--iterations",
        "2",
        "--epsilon",
        "1",
        "--delta",
        "1e-5",
        "--diameter",
        "2",
        "--dim",
        "10",
    )
    assert d["sigma_paper"] == pytest.approx(0.1750, abs=5e-5)
    assert d["initial_iterations"] == 10 and d["strong"]["iterations_1"] == 13
    d = run_json(
        capsys,
        "budget",
        "dp-extractor",
        "--extractor-epsilon",
        "0.1",
        "--extractor-delta",
        "1e-5",
        "--head-epsilon",
        "1",
        "--head-delta",
        "1e-4",
        "--removals",
        "10",
        "--target-epsilon",
        "2",
        "--target-delta",
        "1e-3",
    )
    assert d["epsilon"] == pytest.approx(2.0) and d["max_removals"] == 10


@pytest.mark.parametrize(
    "argv, name",
    [
        (["gaussian", "--sigma", "1", "--delta", "1"], "delta"),
        (["gaussian", "--sigma", "0", "--delta", "0.1"], "sigma"),
        (["gaussian", "--epsilon", "-1", "--delta", "0.1"], "epsilon"),
        (
            ["certified-removal", "--sigma", "-1", "--epsilon", "1", "--delta", "1e-5"],
            "sigma",
        ),
        (
            ["langevin", "--n", "100", "--lam", "1e-3", "--sigma", "0", "--steps", "1"],
            "sigma",
        ),
        (
            [
                "wsgd",
                "--n",
                "100",
                "--lam",
                "1e-3",
                "--sigma",
                "1",
                "--epochs",
                "1",
                "--batch-size",
                "1000",
            ],
            "batch_size",
        ),
        (
            [
                "sekhari",
                "--n",
                "10",
                "--strong-convexity",
                "1",
                "--lipschitz",
                "1",
                "--hessian-lipschitz",
                "1",
                "--capacity",
                "6",
                "--epsilon",
                "1",
                "--delta",
                "1e-5",
            ],
            "capacity",
        ),
        (
            [
                "d2d",
                "--n",
                "10",
                "--strong-convexity",
                "1",
                "--smoothness",
                "0.5",
                "--lipschitz",
                "1",
                "--iterations",
                "1",
                "--epsilon",
                "1",
                "--delta",
                "1e-5",
            ],
            "smoothness",
        ),
        (
            [
                "dp-extractor",
                "--extractor-epsilon",
                "0",
                "--extractor-delta",
                "0",
                "--head-epsilon",
                "1",
                "--head-delta",
                "0",
                "--removals",
                "1",
            ],
            "extractor_epsilon",
        ),
        (["langevin", "--n", "100", "--lam", "1e-3", "--sigma", "1"], "--steps"),
    ],
)
def test_impossible_input_is_a_one_line_error(capsys, argv, name):
    code, out, err = run(capsys, "budget", *argv)
    assert code == 2 and out == ""
    assert err.startswith("dpunlearn: error:") and err.count("\n") == 1
    assert name in err


def test_argparse_errors_are_prefixed(capsys):
    with pytest.raises(SystemExit) as ei:
        cli.main(["budget", "gaussian", "--sigma", "abc"])
    assert ei.value.code == 2
    assert capsys.readouterr().err.startswith("dpunlearn: error:")
    with pytest.raises(SystemExit):
        cli.main(["budget"])
    assert "dpunlearn: error:" in capsys.readouterr().err


def test_register_command(capsys):
    def add(subparsers):
        p = subparsers.add_parser("hello")
        p.set_defaults(func=lambda args: cli.Output("hi", [("x", 1.5)], {"x": 1.5}))

    cli.register_command("hello-test", add)
    try:
        code, out, _ = run(capsys, "hello")
        assert code == 0 and "x  1.5" in out
        with pytest.raises(ValueError, match="already registered"):
            cli.register_command("hello-test", lambda s: None)
    finally:
        del cli.COMMANDS["hello-test"]


# ---------------------------------------------------------------------------
# ledger files
# ---------------------------------------------------------------------------


def _ledger(tmp_path):
    led = L.Ledger.create(
        tmp_path / "model.jsonl",
        currency="certified_removal",
        params=dict(rule="paper", sigma=10.0, method="paper"),
        target_epsilon=1.0,
        target_delta=1e-4,
        dp_epsilon=5.0,
        dp_delta=1e-5,
    )
    led.train(dp=[L.gaussian_release(4.0)])
    for _ in range(4):
        led.request(dp=[L.gaussian_release(4.0)], residual_bound=0.5)
    return led


def test_ledger_summary_table_and_json(tmp_path, capsys):
    led = _ledger(tmp_path)
    code, out, err = run(capsys, "budget", "ledger", str(led.path))
    assert code == 0, err
    assert "U: unlearning certificate" in out and "D: DP of all releases" in out
    # 5 Gaussian(4) releases: exact composed Gaussian (reported), RDP (shown too).
    assert "2.258145" in out and "exact-gaussian" in out
    assert "2.451506" in out and "D via RDP" in out
    d = run_json(capsys, "budget", "ledger", str(led.path), "--pld")
    assert d["dp"]["accountant"] == "exact-gaussian"
    assert d["dp"]["epsilon"] == pytest.approx(2.25814536337375, rel=1e-9)
    assert d["dp"]["epsilon_rdp"] == pytest.approx(2.451506386226333, rel=1e-6)
    assert d["dp"]["sigma_effective"] == pytest.approx(4.0 / 5**0.5, rel=1e-12)
    assert d["dp"]["non_gaussian_releases"] == 0
    assert d["dp"]["epsilon_pld"] == pytest.approx(2.2581453633737465, abs=1e-3)
    assert d["unlearning"]["remaining"] == pytest.approx(0.2803009464393384, rel=1e-9)
    assert d["torn_tail"] is None and d["num_requests"] == 4
    plain = run_json(capsys, "budget", "ledger", str(led.path))
    assert "epsilon_pld" not in plain["dp"]
    assert plain["dp"]["epsilon"] == d["dp"]["epsilon"]


def test_ledger_torn_and_corrupt_files(tmp_path, capsys):
    led = _ledger(tmp_path)
    data = open(led.path, "rb").read()
    with open(led.path, "r+b") as f:
        f.truncate(len(data) - 10)
    start = data.rfind(b"\n", 0, len(data) - 10) + 1
    code, out, err = run(capsys, "budget", "ledger", str(led.path))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert f"byte offset {start}" in err
    d = run_json(capsys, "budget", "ledger", str(led.path), "--allow-torn")
    assert d["torn_tail"]["offset"] == start and d["num_requests"] == 3
    code, out, err = run(capsys, "budget", "ledger", str(led.path), "--repair")
    assert code == 0 and "repaired" in out
    assert os.path.exists(f"{led.path}.torn-{start}")
    (tmp_path / "bad.jsonl").write_bytes(b'{"kind": "config"}\nnot json\n')
    code, out, err = run(capsys, "budget", "ledger", str(tmp_path / "bad.jsonl"))
    assert code == 1 and err.startswith("dpunlearn: error:") and err.count("\n") == 1
    code, _, err = run(capsys, "budget", "ledger", str(tmp_path))
    assert code == 1 and "directory" in err


def _one_line_error(code, out, err, expected_code=1):
    assert code == expected_code and out == ""
    assert err.startswith("dpunlearn: error:") and err.count("\n") == 1
    assert "Traceback" not in err


def _hand_written(tmp_path, *lines, name="hand.jsonl", **budget):
    cfg = L.make_config(
        currency="certified_removal",
        params=dict(rule="paper", sigma=10.0, method="paper"),
        target_epsilon=1.0,
        target_delta=1e-4,
        **budget,
    )
    train = {"kind": "train", "seq": 1, "dp": None}
    path = tmp_path / name
    path.write_bytes(
        L.encode_entry(cfg) + L.encode_entry(train) + b"".join(x + b"\n" for x in lines)
    )
    return path


def test_ledger_hostile_lines_exit_1(tmp_path, capsys):
    req = b'{"kind":"request","seq":2,"dp":null,"residual_bound":0.1,"removed":'
    for name, line, says in (
        ("digits", req + b"1" * 5000 + b"}", "5000 digits"),
        ("deep", req + b'1,"note":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nests"),
    ):
        path = _hand_written(tmp_path, line, name=f"{name}.jsonl")
        code, out, err = run(capsys, "budget", "ledger", str(path))
        _one_line_error(code, out, err)
        assert says in err and "line 3" in err


@pytest.mark.parametrize(
    "old, new",
    [
        (b'"dp_epsilon":8.0', b'"dp_epsilon":-1'),
        (b'"dp_epsilon":8.0', b'"dp_epsilon":NaN'),
    ],
)
def test_ledger_invalid_configuration_exits_1(tmp_path, capsys, old, new):
    path = _hand_written(tmp_path, dp_epsilon=8.0)
    path.write_bytes(path.read_bytes().replace(old, new))
    code, out, err = run(capsys, "budget", "ledger", str(path))
    _one_line_error(code, out, err)
    assert "dp_epsilon" in err or "NaN" in err


def test_ledger_non_regular_files_exit_1_without_hanging(tmp_path, capsys):
    if os.path.exists("/dev/zero"):
        code, out, err = run(capsys, "budget", "ledger", "/dev/zero")
        _one_line_error(code, out, err)
        assert "not a regular file (a character device)" in err
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "ledger.fifo"
        os.mkfifo(fifo)
        p = sub("budget", "ledger", str(fifo))  # timeout=60: a hang fails
        _one_line_error(p.returncode, p.stdout, p.stderr)
        assert "not a regular file (a FIFO)" in p.stderr


def test_ledger_integrity_rows_pin_and_tampering(tmp_path, capsys):
    led = _ledger(tmp_path)
    code, out, err = run(capsys, "budget", "ledger", str(led.path))
    assert code == 0, err
    assert "sha256 chain" in out and led.pin in out
    d = run_json(capsys, "budget", "ledger", str(led.path))
    assert d["integrity"]["chain"] == "sha256" and d["integrity"]["mac"] == "none"
    assert d["integrity"]["pin"] == led.pin and d["integrity"]["num_entries"] == 5
    pin = led.pin
    code, out, err = run(
        capsys, "budget", "ledger", str(led.path), "--expect-head", pin
    )
    assert code == 0 and "pinned head found" in out
    # Deleting the last entry leaves a valid chain: only the pin catches it.
    data = open(led.path, "rb").read()
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 1])
    assert run(capsys, "budget", "ledger", str(cut))[0] == 0
    code, out, err = run(capsys, "budget", "ledger", str(cut), "--expect-head", pin)
    _one_line_error(code, out, err)
    assert "holds 4 entries" in err and "truncated" in err
    # The example: sigma edited 10 -> 1000.
    edited = tmp_path / "sigma.jsonl"
    edited.write_bytes(data.replace(b'"sigma":10.0', b'"sigma":1000.0', 1))
    code, out, err = run(capsys, "budget", "ledger", str(edited))
    _one_line_error(code, out, err)
    assert "line 2 (byte offset" in err and "hash chain" in err
    code, out, err = run(
        capsys, "budget", "ledger", str(led.path), "--expect-head", "4:xyz"
    )
    _one_line_error(code, out, err, expected_code=2)
    assert "expect_head" in err


def test_ledger_mac_keys(tmp_path, capsys, monkeypatch):
    key = b"0123456789abcdef0123456789abcdef"
    led = L.Ledger.create(
        tmp_path / "keyed.jsonl",
        key=key,
        currency="sekhari",
        params=dict(capacity=3),
        target_epsilon=1.0,
        target_delta=1e-5,
    )
    led.train(dp=None)
    led.request(dp=None)
    path = str(led.path)
    (tmp_path / "key").write_bytes(key + b"\n")  # as `echo KEY > key` writes it
    (tmp_path / "wrong").write_bytes(b"w" * 32)
    (tmp_path / "short").write_bytes(b"w" * 8)
    code, out, err = run(capsys, "budget", "ledger", path)
    assert code == 0 and "HMAC-SHA256 not verified (no key given)" in out
    code, out, err = run(
        capsys, "budget", "ledger", path, "--key-file", str(tmp_path / "key")
    )
    assert code == 0 and "HMAC-SHA256 verified" in out
    monkeypatch.setenv("LEDGER_KEY", key.decode())
    d = run_json(capsys, "budget", "ledger", path, "--key-env", "LEDGER_KEY")
    assert d["integrity"]["mac"] == "verified"
    code, out, err = run(
        capsys, "budget", "ledger", path, "--key-file", str(tmp_path / "wrong")
    )
    _one_line_error(code, out, err)
    assert "line 1 (byte offset 0) fails its MAC" in err
    # Bad key arguments are bad input (exit 2), checked before the ledger.
    for argv, says in (
        (["--key-file", str(tmp_path / "short")], "at least 32 bytes"),
        (["--key-file", str(tmp_path / "nope")], "cannot read key file"),
        (["--key-env", "DPUNLEARN_TEST_UNSET_VAR"], "is not set"),
    ):
        code, out, err = run(capsys, "budget", "ledger", path, *argv)
        _one_line_error(code, out, err, expected_code=2)
        assert says in err
    with pytest.raises(SystemExit) as ei:
        cli.main(["budget", "ledger", path, "--key-file", "k", "--key-env", "K"])
    assert ei.value.code == 2


def test_ledger_written_before_the_chain_is_reported_unchained(tmp_path, capsys):
    path = _hand_written(tmp_path)
    code, out, err = run(capsys, "budget", "ledger", str(path))
    assert code == 0 and "unchained (written before hash chaining" in out
    d = run_json(capsys, "budget", "ledger", str(path))
    assert (
        d["integrity"]["chain"] == "none" and d["integrity"]["unchained_entries"] == 1
    )


def test_ledger_lock_timeout_is_one_line_exit_1(tmp_path, capsys, monkeypatch):
    # A writer stopped mid-append (see test_ledger: the reader's TimeoutError).
    def stuck(*args, **kwargs):
        raise TimeoutError("l.jsonl: another process has held the ledger's lock")

    monkeypatch.setattr(L, "load_ledger", stuck)
    code, out, err = run(capsys, "budget", "ledger", str(tmp_path / "l.jsonl"))
    _one_line_error(code, out, err)
    assert "held the ledger's lock" in err

# ---------------------------------------------------------------------------
# hostile input: counts, NaN strings, extreme σ (issue #7, items 5 and 7)
# ---------------------------------------------------------------------------

LANG = "langevin --n 100 --lam 1e-3 --sigma 0.1"
WSGD = "wsgd --n 100 --lam 1e-3 --sigma 0.1"
D2D = "d2d --n 100 --strong-convexity 1 --smoothness 2 --lipschitz 1 --epsilon 1 --delta 1e-5"
SEK = "sekhari --n 100 --lipschitz 1 --hessian-lipschitz 1 --epsilon 1 --delta 1e-5"
EXTR = "dp-extractor --extractor-delta 0 --head-epsilon 0.5 --head-delta 1e-6"


@pytest.mark.parametrize(
    "line, name",
    [
        (f"{LANG} --steps 10 --requests -1", "--requests"),  # exited 0 before
        (f"{LANG} --steps 10 --requests 0", "--requests"),
        (f"{LANG} --steps 10 --requests 1000000000", "--requests"),  # hung before
        (f"{WSGD} --epochs 1 --requests -1", "--requests"),
        (f"{LANG} --steps 10 --target-epsilon nan", "target_epsilon"),
        (f"{LANG} --steps 10 --target-epsilon inf", "target_epsilon"),
        (f"{LANG} --steps -10", "steps"),
        (f"{LANG} --steps 10 --removed 0", "removed"),
        (f"{LANG} --steps 10 --delta nan", "delta"),
        ("langevin --n 0 --strong-convexity 1 --step-size 0.5 --sigma 1 --steps 1", "--n"),
        ("rdp --gaussian 1:-3 --delta 1e-5", "COUNT"),
        ("rdp --gaussian 1:99999999999999999999 --delta 1e-5", "2**53"),
        ("rdp --subsampled 0.01:1:0 --delta 1e-5", "COUNT"),
        ("rdp --gaussian nan --delta 1e-5", "sigma"),
        ("rdp --gaussian inf:3 --delta 1e-5", "sigma"),
        ("rdp --gaussian 1 --delta nan", "delta"),
        ("subsampled-gaussian --q 0.01 --sigma 1 --steps -1 --delta 1e-5", "--steps"),
        ("subsampled-gaussian --q nan --sigma 1 --steps 10 --delta 1e-5", "q"),
        ("gaussian --sigma nan --delta 1e-5", "sigma"),
        ("gaussian --sigma 1 --delta inf", "delta"),
        ("gaussian --epsilon 1e-310 --delta 1e-320", "overflows float64"),
        (f"{D2D} --iterations 1000000000", "iterations=1000000000"),  # 0.0 before
        (f"{D2D} --iterations 99999999999999999999", "iterations"),
        (f"{SEK} --strong-convexity 1e-300 --capacity 1", "strong_convexity"),
        (f"{SEK} --strong-convexity 1 --capacity -1", "capacity"),
        (f"{EXTR} --extractor-epsilon 1 --removals 99999999999999999999", "num_removed"),
        (f"{EXTR} --extractor-epsilon nan --removals 1", "extractor_epsilon"),
    ],
)
def test_hostile_input_is_a_one_line_error(capsys, line, name):
    code, out, err = run(capsys, "budget", *words(line))
    assert code == 2 and out == "", (code, out)
    assert err.startswith("dpunlearn: error:") and err.count("\n") == 1, err
    assert name in err


@pytest.mark.parametrize(
    "line",
    [
        "gaussian --sigma 1e-300 --delta 1e-5",
        "gaussian --sigma 1e300 --epsilon 1",
        "gaussian --epsilon 1e-300 --delta 1e-5",
        "rdp --gaussian 1e-300 --subsampled 0.01:1e-300:10 --delta 1e-5",
        "rdp --gaussian 1e300 --subsampled 0.5:1e300:10 --delta 1e-5 --pld",
        "subsampled-gaussian --q 0.01 --sigma 1e-300 --steps 10 --delta 1e-5",
        "langevin --n 100 --lam 1e-3 --sigma 1e-300 --steps 10 --requests 3",
        "langevin --n 100 --lam 1e-3 --sigma 1e300 --steps 10 --target-epsilon 1",
        "wsgd --n 100 --lam 1e-3 --sigma 1e-300 --epochs 1 --requests 3",
        "wsgd --n 100 --lam 1e-3 --sigma 1e300 --epochs 1 --target-epsilon 1",
        f"{D2D} --sigma 1e-300",
        f"{D2D} --iterations 600",
        f"{EXTR} --extractor-epsilon 1e-300 --target-epsilon 1 --target-delta 1e-5",
    ],
)
def test_extreme_sigma_prints_no_runtime_warning(capsys, line):
    # RuntimeWarnings (overflow, divide by zero) were printed for extreme σ;
    # the values are now formed in log space. Any warning fails this test.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code, out, err = run(capsys, "budget", *words(line))
    assert code == 0 and err == "", err
    assert "nan" not in out.lower().replace("nan ", "")


def test_rdp_pld_with_a_billion_gaussians_falls_back_to_the_exact_value(capsys):
    # Issue example: --gaussian 1:1000000000 --pld asked for 72.8 TiB. The PLD
    # is skipped with a note, and the exact composition (one Gaussian with
    # σ/√k) is reported: an exact value, below the RDP bound.
    import time

    t0 = time.perf_counter()
    d = run_json(capsys, "budget", "rdp", "--gaussian", "1:1000000000", "--delta", "1e-5", "--pld")
    assert time.perf_counter() - t0 < 5.0
    from dpunlearn.accounting import mechanisms

    want = mechanisms.gaussian_epsilon(1e-5, sigma=1.0 / math.sqrt(1e9))
    assert d["epsilon_pld"] is None
    assert d["epsilon_exact"] == pytest.approx(want, rel=1e-12)
    assert want < d["epsilon"]
    code, out, err = run(capsys, "budget", "rdp", "--gaussian", "1:1000000000", "--delta", "1e-5", "--pld")
    assert code == 0 and "PLD not computed" in out and "grid points" in out


def test_langevin_table_of_identical_requests_stops_computing_at_inf(capsys):
    # ε_s grows like 2^s·ε₀: with ε₀ ≈ 1e200 (σ = 1e-100) it passes float64
    # after ~360 identical requests, and every later row is inf without being
    # computed (the cost of a row does not grow with its index either).
    import time

    t0 = time.perf_counter()
    d = run_json(
        capsys, "budget", *words("langevin --n 100 --lam 1e-3 --sigma 1e-100 --steps 10 --requests 3000")
    )
    assert time.perf_counter() - t0 < 30.0
    eps = [r["epsilon"] for r in d["requests"]]
    assert len(eps) == 3000 and eps[-1] == "inf"
    first_inf = eps.index("inf")
    assert all(e == "inf" for e in eps[first_inf:])
    assert all(isinstance(e, float) for e in eps[:first_inf])


def _run_quiet(argv):
    """(exit code, stdout, stderr) of cli.main, argparse exits included."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


_HOSTILE_TEXT = ["nan", "inf", "-inf", "-1", "0", "1e-320", "5e-324", "1e300", "1e400",
                 "99999999999999999999", "abc", "", "0.5", "1", "3"]


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    template=st.sampled_from([
        "budget gaussian --sigma {a} --delta {b}",
        "budget gaussian --epsilon {a} --delta {b} --sensitivity {c}",
        "budget rdp --gaussian {a}:{c} --delta {b}",
        "budget subsampled-gaussian --q {b} --sigma {a} --steps {c} --delta 1e-5",
        "budget langevin --n {c} --lam 1e-3 --sigma {a} --steps 10 --delta {b} --requests 2",
        "budget wsgd --n 100 --lam {b} --sigma {a} --epochs {c}",
        "budget d2d --n 100 --strong-convexity {b} --smoothness 2 --lipschitz 1 --epsilon {a} --delta 1e-5 --iterations {c}",
        "budget sekhari --n 100 --strong-convexity {a} --lipschitz 1 --hessian-lipschitz 1 --epsilon 1 --delta {b} --capacity {c}",
        "budget dp-extractor --extractor-epsilon {a} --extractor-delta {b} --head-epsilon 0.5 --head-delta 1e-6 --removals {c}",
    ]),
    a=st.sampled_from(_HOSTILE_TEXT),
    b=st.sampled_from(_HOSTILE_TEXT + ["1e-5", "0.01"]),
    c=st.sampled_from(_HOSTILE_TEXT),
)
def test_cli_hostile_values_never_crash(template, a, b, c):
    import warnings

    argv = [tok.format(a=a, b=b, c=c) for tok in template.split(" ")]  # "" stays a value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code, out, err = _run_quiet(argv)
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err
    if code == 2:
        assert out == "" and err.startswith("dpunlearn: error:") and err.count("\n") == 1, err
    else:
        assert err == ""


def test_certified_removal_defaults_to_the_shadow_schedule(capsys):
    d = run_json(
        capsys, *words("budget certified-removal --epsilon 1 --delta 1e-4 --marked 0,0,1,3")
    )
    # δ = 1e-4 split 50/40/10 %: δ' = 4e-5, η = 1e-5, so M >= ln(1e5)/4e-5.
    assert d["min_shadows"] == d["shadows"] == 287818
    assert d["delta_schedule"] == pytest.approx(4e-5)
    # One marked shadow already lifts the Clopper–Pearson bound past δ'.
    assert d["certified_requests"] == 2
    code, _, err = run(capsys, *words("budget certified-removal --epsilon 1 --delta 1e-4 --sigma 10"))
    assert code == 2 and "--rule paper" in err
    code, _, err = run(capsys, *words("budget certified-removal --epsilon 1 --delta 1e-4 --shadows 100"))
    assert code == 2 and "--shadows" in err
    code, _, err = run(capsys, *words("budget certified-removal --epsilon 1 --delta 1e-4 --marked 3,1"))
    assert code == 2 and "non-decreasing" in err
