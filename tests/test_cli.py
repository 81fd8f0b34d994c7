"""The ``actinf`` command line (actinf.cli).

Runs that solve real cases go through a subprocess (the real entry point, stdout and
stderr apart, no JAX state shared with other tests) with a persistent JAX compilation
cache shared by this module, so that each case structure compiles once. Tests of the
plumbing (options, file locations, errors) run in-process with ``run_case`` replaced
by a stand-in that returns SPM's reference outputs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from typer.testing import CliRunner

import actinf
from actinf.cli import app
from actinf.spm import runner
from actinf.spm.io import load_case
from actinf.spm.runner import compare, passes

DATA = Path(__file__).parent / "data"
SRC = Path(__file__).resolve().parents[1] / "src"
VBX = DATA / "vbx"
MAT = DATA / "mat"
EXPECTED = {"X", "Q", "P", "R", "F", "G", "H", "w"}


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jax-cache")


def actinf_cli(*args: object, cache: Path) -> subprocess.CompletedProcess:
    """Run ``actinf ARGS...`` in a fresh interpreter."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    code = "from actinf.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def checked_pair(tmp_path_factory, jax_cache):
    """``actinf spm run --check -o OUT vbx_1001.json vbx_1002.json``, run once."""
    out = tmp_path_factory.mktemp("out") / "spm"
    proc = actinf_cli(
        "spm", "run", "--check", "-o", out, VBX / "vbx_1001.json", VBX / "vbx_1002.json",
        cache=jax_cache,
    )  # fmt: skip
    return proc, out


# ------------------------------------------------------------------- real runs of SPM


def test_check_two_reference_cases_pass(checked_pair):
    proc, _ = checked_pair
    assert proc.returncode == 0, proc.stderr
    out = lines(proc.stdout)
    assert out[-1] == "2 passed, 0 failed"
    assert out[0].startswith("vbx_1001  PASS  X ")
    assert out[1].startswith("vbx_1002  PASS  X ")
    assert "Traceback" not in proc.stderr


def test_output_json_written_to_out_folder_and_reloads(checked_pair):
    proc, out = checked_pair
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["vbx_1001.json", "vbx_1002.json"]
    for name in ("vbx_1001", "vbx_1002"):
        written = load_case(out / f"{name}.json")
        reference = load_case(VBX / f"{name}.json")
        assert written.name == name
        assert len(written.trials) == len(reference.trials)
        for trial, ref in zip(written.trials, reference.trials, strict=True):
            assert set(trial.outputs) == set(ref.outputs)
            assert EXPECTED <= set(trial.outputs)
            for key in ("s", "o", "u"):
                np.testing.assert_array_equal(getattr(trial, key), getattr(ref, key))
        assert passes(compare([t.outputs for t in written.trials], reference))
    learned = load_case(out / "vbx_1001.json").trials[0].outputs
    assert {"a_post", "b_post", "Fa", "Fb"} <= set(learned)


def test_mat_with_reference_folder_passes(tmp_path, jax_cache):
    proc = actinf_cli(
        "spm", "run", "--check", "-o", tmp_path, "--reference", VBX, MAT / "vbx_1001.mat",
        cache=jax_cache,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = lines(proc.stdout)
    assert out[0].startswith("vbx_1001  PASS")
    assert out[-1] == "1 passed, 0 failed"
    assert EXPECTED <= set(load_case(tmp_path / "vbx_1001.json").trials[0].outputs)


def test_tampered_reference_fails(tmp_path, jax_cache):
    doc = json.loads((VBX / "vbx_1001.json").read_text())
    doc["trials"][0]["X"][0]["data"][0] += 0.3
    case = tmp_path / "vbx_1001.json"
    case.write_text(json.dumps(doc))
    proc = actinf_cli("spm", "run", "--check", "-o", tmp_path / "out", case, cache=jax_cache)
    assert proc.returncode == 1
    out = lines(proc.stdout)
    assert out[-1] == "0 passed, 1 failed"
    assert out[0].startswith("vbx_1001  FAIL  X 3e-01!  Q ")
    assert json.loads(case.read_text()) == doc  # the input is left alone


def test_malformed_json_among_good_files(tmp_path, jax_cache):
    bad = tmp_path / "broken.json"
    bad.write_text('{"name": "broken", "model": ')
    out = tmp_path / "out"
    proc = actinf_cli("spm", "run", "-o", out, bad, VBX / "vbx_1001.json", cache=jax_cache)
    assert proc.returncode != 0
    errors = error_lines(proc.stderr)
    assert len(errors) == 1
    assert str(bad) in errors[0] and "invalid JSON" in errors[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert (out / "vbx_1001.json").is_file()  # the good file was still processed
    assert not (out / "broken.json").exists()
    assert lines(proc.stdout)[-1] == "1 written, 1 failed"


# --------------------------------------------------------------- in-process plumbing


@pytest.fixture
def cli():
    runner_ = CliRunner()

    def invoke(*args: object):
        return runner_.invoke(app, [str(a) for a in args])

    return invoke


@pytest.fixture
def fake_run(monkeypatch):
    """Replace run_case by one that returns the reference JSON's outputs (no JAX) and
    records its keyword arguments."""
    calls: list[dict] = []

    def run_case(case, *, gamma_fixed=None, rng_key=None, callback=None):
        calls.append({"name": case.name, "gamma_fixed": gamma_fixed, "rng_key": rng_key})
        ref = load_case(VBX / f"{case.name}.json")
        return [
            {**ref_t.outputs, "s": t.s, "o": t.o, "u": t.u}
            for t, ref_t in zip(case.trials, ref.trials, strict=True)
        ]

    monkeypatch.setattr(runner, "run_case", run_case)
    return calls


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"actinf {actinf.__version__}"


def test_help_lists_the_spm_group(cli):
    result = cli("--help")
    assert result.exit_code == 0
    assert "spm" in result.stdout
    result = cli("spm", "run", "--help")
    assert result.exit_code == 0
    for option in ("--out", "--check", "--reference", "--gamma-fixed", "--seed"):
        assert option in result.stdout


def test_mat_without_mdp_is_one_line_error(cli, tmp_path):
    path = tmp_path / "nomdp.mat"
    scipy.io.savemat(path, {"model": np.eye(2)})
    result = cli("spm", "run", "--check", "-o", tmp_path / "out", path)
    assert result.exit_code == 1
    assert lines(result.stderr) == error_lines(result.stderr)
    assert len(lines(result.stderr)) == 1
    assert str(path) in result.stderr and "no MDP variable" in result.stderr
    assert lines(result.stdout)[-1] == "0 passed, 1 failed"
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_unwritable_output_folder_is_one_line_error(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for out in (blocker / "out", blocker):
        result = cli("spm", "run", "-o", out, VBX / "vbx_1001.json")
        assert result.exit_code == 2
        assert len(lines(result.stderr)) == 1
        assert result.stderr.startswith(f"error: {out}: ")
        assert result.stdout == ""


def test_missing_file_is_one_line_error(cli, tmp_path):
    result = cli("spm", "run", "-o", tmp_path, tmp_path / "nowhere.json")
    assert result.exit_code == 1
    assert lines(result.stderr) == [f"error: {tmp_path / 'nowhere.json'}: no such file or directory"]


def test_mat_uses_sibling_vbx_folder_and_its_gamma(cli, tmp_path, fake_run):
    (tmp_path / "mat").mkdir()
    (tmp_path / "vbx").mkdir()
    mat = tmp_path / "mat" / "vbx_1014.mat"
    shutil.copy(MAT / "vbx_1014.mat", mat)
    shutil.copy(VBX / "vbx_1014.json", tmp_path / "vbx" / "vbx_1014.json")  # gamma_fixed 1
    result = cli("spm", "run", "--check", mat)
    assert result.exit_code == 0, result.output
    assert lines(result.stdout)[-1] == "1 passed, 0 failed"
    assert fake_run[0]["gamma_fixed"] is True
    written = load_case(tmp_path / "mat" / "vbx_1014.json")  # NAME.json beside a .mat
    assert written.options["gamma_fixed"] is True


def test_mat_with_nothing_to_compare_fails(cli, tmp_path, fake_run):
    mat = tmp_path / "vbx_1001.mat"
    shutil.copy(MAT / "vbx_1001.mat", mat)
    result = cli("spm", "run", "--check", "-o", tmp_path / "out", mat)
    assert result.exit_code == 1
    out = lines(result.stdout)
    assert out[0].startswith("vbx_1001  FAIL  nothing to compare with")
    assert out[-1] == "0 passed, 1 failed"


def test_gamma_fixed_flag_overrides_the_case(cli, tmp_path, fake_run):
    result = cli("spm", "run", "--gamma-fixed", "-o", tmp_path, VBX / "vbx_1001.json")
    assert result.exit_code == 0, result.output
    assert fake_run[-1]["gamma_fixed"] is True
    assert load_case(tmp_path / "vbx_1001.json").options["gamma_fixed"] is True
    result = cli("spm", "run", "--no-gamma-fixed", "-o", tmp_path, VBX / "vbx_1033.json")
    assert result.exit_code == 0, result.output
    assert fake_run[-1]["gamma_fixed"] is False  # the case says 1


def test_seed_gives_the_sampling_key(cli, tmp_path, fake_run):
    import jax

    assert cli("spm", "run", "-o", tmp_path, VBX / "vbx_1001.json").exit_code == 0
    assert fake_run[-1]["rng_key"] is None
    assert cli("spm", "run", "--seed", 7, "-o", tmp_path, VBX / "vbx_1001.json").exit_code == 0
    np.testing.assert_array_equal(fake_run[-1]["rng_key"], jax.random.PRNGKey(7))
    assert cli("spm", "run", "--seed", -1, "-o", tmp_path, VBX / "vbx_1001.json").exit_code == 2


def test_default_output_beside_json_input(cli, tmp_path, fake_run):
    case = tmp_path / "vbx_1002.json"
    shutil.copy(VBX / "vbx_1002.json", case)
    before = case.read_bytes()
    result = cli("spm", "run", case)
    assert result.exit_code == 0, result.output
    assert lines(result.stdout) == [f"vbx_1002  {tmp_path / 'vbx_1002.out.json'}", "1 written, 0 failed"]
    assert case.read_bytes() == before
    assert EXPECTED <= set(load_case(tmp_path / "vbx_1002.out.json").trials[0].outputs)


def test_output_never_overwrites_an_input(cli, tmp_path, fake_run):
    mat = tmp_path / "vbx_1002.mat"
    case = tmp_path / "vbx_1002.json"
    shutil.copy(MAT / "vbx_1002.mat", mat)
    shutil.copy(VBX / "vbx_1002.json", case)
    before = case.read_bytes()
    result = cli("spm", "run", "-o", tmp_path, mat, case)  # both would write vbx_1002.json
    assert result.exit_code == 1
    assert len(error_lines(result.stderr)) == 2
    assert case.read_bytes() == before
    assert fake_run == []
