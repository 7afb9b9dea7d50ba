"""Files and folders: hqf deletes or overwrites only what it created, never through a symbolic link, never
outside --out; a full disk is one line and leaves no partial output; default run folders never collide;
``hqf list`` shows every plugin that registers a clashing name."""

from __future__ import annotations

import builtins
import datetime
import errno
import io
import json
import os
import pathlib
import threading
import types

import numpy as np
import pytest
from click.testing import CliRunner

import hqf.learn.rundir.folder
import hqf.learn.rundir.saved
import hqf.studies.sweep
from hqf.cli import main
from hqf.errors import ConfigError
from hqf.quantum.interfaces import Backend
from hqf.studies.grid import expand
from hqf.studies.sweep import run_sweep

#: what torch says when a checkpoint cannot be written (a full disk among other causes)
TORCH_WRITE_FAILED = (
    "[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file data/0: file write failed"
)


def _finish(config: dict, directory: pathlib.Path) -> None:
    """A stand-in for a run: a finished run directory."""
    (directory / "config.toml").write_text(f"seed = {config['seed']}\n")
    (directory / "metrics.json").write_text(json.dumps({"accuracy": 0.5}))


# -- symbolic links and files hqf did not write -----------------------------------------------------------


def test_a_run_folder_that_is_a_symlink_is_refused_and_nothing_behind_it_is_touched(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("mine")
    out = tmp_path / "out"
    runs = expand({"variants": {"v": {}}}, out)
    runs[0].directory.parent.mkdir(parents=True)
    runs[0].directory.symlink_to(elsewhere)
    with pytest.raises(ConfigError) as info:
        run_sweep(runs, out, runner=_finish)
    assert str(info.value) == (
        f"{out}/v/seed0 is a symbolic link; hqf never writes or deletes through one "
        "(remove the link or choose another --out; nothing was written)"
    )
    assert [p.name for p in elsewhere.iterdir()] == ["precious.txt"] and not (out / "sweep.json").exists()


def test_a_folder_on_the_way_to_a_run_that_is_a_symlink_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "v").symlink_to(elsewhere)
    with pytest.raises(ConfigError, match=r"/out/v is a symbolic link"):
        run_sweep(expand({"variants": {"v": {}}}, out), out, runner=_finish)
    assert not any(elsewhere.iterdir())


def test_the_manifest_is_never_written_through_a_symlink(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("not a manifest")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.json.tmp").symlink_to(target)  # where the manifest used to be staged
    result = run_sweep(expand({"variants": {"v": {}}}, out), out, runner=_finish)
    assert len(result.ran) == 1 and target.read_text() == "not a manifest"
    assert json.loads((out / "sweep.json").read_text())["runs"][0]["dir"] == "v/seed0"
    assert not (out / "sweep.json").is_symlink()
    (out / "sweep.json").unlink()
    (out / "sweep.json").symlink_to(target)
    with pytest.raises(ConfigError, match=r"sweep.json is a symbolic link; hqf never writes or deletes through one"):
        run_sweep(expand({"variants": {"v": {}}}, out), out, runner=_finish)
    assert target.read_text() == "not a manifest"


def test_a_half_finished_run_folder_holding_a_users_file_is_refused_not_emptied(tmp_path):
    out = tmp_path / "out"
    runs = expand({"variants": {"v": {}}}, out)
    folder = runs[0].directory
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text("seed = 0\n")  # a half-written run: hqf's own file ...
    (folder / "notes.txt").write_text("my notes")  # ... and the user's
    with pytest.raises(ConfigError) as info:
        run_sweep(runs, out, runner=_finish)
    assert str(info.value) == (
        f"{folder} holds files hqf did not write (notes.txt); move them out and rerun, "
        "or choose another --out (nothing was deleted)"
    )
    assert (folder / "notes.txt").read_text() == "my notes" and (folder / "config.toml").exists()
    (folder / "notes.txt").unlink()
    (folder / ".checkpoint.pt.tmp-123").write_bytes(b"x")  # what a killed run leaves: hqf's, so emptied
    assert len(run_sweep(runs, out, runner=_finish).ran) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["config.toml", "metrics.json"]


def test_a_worker_never_empties_a_folder_that_gained_a_users_file(tmp_path):
    folder = tmp_path / "out" / "v" / "seed0"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes")
    directory, outcome, reason = hqf.studies.sweep.execute(_finish, {"seed": 0}, str(folder), None, False, True)
    assert outcome == "failed" and "holds files hqf did not write (notes.txt)" in reason
    assert (folder / "notes.txt").read_text() == "my notes" and not (folder / "metrics.json").exists()


# -- a full disk ------------------------------------------------------------------------------------------


class FullDisk:
    """A disk of ``budget`` bytes under ``root``: every write into a file there (Python file objects,
    ``os.fdopen`` and ``os.write`` alike) counts, and one past the budget raises ENOSPC, as a full file system does."""

    def __init__(self, root: pathlib.Path, budget: int) -> None:
        self.root, self.budget, self.used = str(root), budget, 0
        self.fds: set[int] = set()

    def charge(self, n: int) -> None:
        if self.used + n > self.budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.used += n

    def covers(self, path) -> bool:
        try:
            return os.path.abspath(os.fspath(path)).startswith(self.root)
        except TypeError:  # a file descriptor
            return False

    def install(self, monkeypatch) -> FullDisk:
        real_open, real_os_open, real_write, real_fdopen = builtins.open, os.open, os.write, os.fdopen
        disk = self

        class Charged:
            def __init__(self, handle):
                self._handle = handle

            def write(self, data):
                disk.charge(len(data.encode() if isinstance(data, str) else data))
                return self._handle.write(data)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self._handle.close()

            def __iter__(self):
                return iter(self._handle)

            def __getattr__(self, name):
                return getattr(self._handle, name)

        def fake_open(file, mode="r", *args, **kwargs):
            handle = real_open(file, mode, *args, **kwargs)
            return Charged(handle) if disk.covers(file) and set(mode) & set("wax+") else handle

        def fake_os_open(path, flags, *args, **kwargs):
            fd = real_os_open(path, flags, *args, **kwargs)
            if disk.covers(path) and flags & (os.O_WRONLY | os.O_RDWR):
                disk.fds.add(fd)
            return fd

        def fake_fdopen(fd, *args, **kwargs):
            handle = real_fdopen(fd, *args, **kwargs)
            return Charged(handle) if fd in disk.fds else handle

        def fake_write(fd, data):
            if fd in disk.fds:
                disk.charge(len(data))
            return real_write(fd, data)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)
        monkeypatch.setattr(os, "open", fake_os_open)
        monkeypatch.setattr(os, "write", fake_write)
        monkeypatch.setattr(os, "fdopen", fake_fdopen)
        return self


def _sweep_folder(root: pathlib.Path) -> pathlib.Path:
    rows = []
    for variant in ("adam", "full"):
        for seed in (0, 1, 2):
            folder = root / variant / f"seed{seed}"
            folder.mkdir(parents=True)
            accuracy = 0.7 + 0.01 * seed + (0.05 if variant == "full" else 0)
            (folder / "metrics.json").write_text(json.dumps({"accuracy": accuracy, "macro_f1": 0.6, "ece": 0.05}))
            rows.append({"dir": f"{variant}/seed{seed}", "variant": variant, "seed": seed})
    (root / "sweep.json").write_text(json.dumps({"runs": rows, "report": {"baseline": "adam"}}))
    return root


@pytest.mark.parametrize("budget", [0, 1500, 6000])
def test_hqf_report_on_a_full_disk_is_one_line_and_leaves_no_partial_report(tmp_path, monkeypatch, budget):
    sweep = _sweep_folder(tmp_path / "sweep")
    out = tmp_path / "report"
    FullDisk(out, budget).install(monkeypatch)
    result = CliRunner().invoke(main, ["report", str(sweep), "--out", str(out)])
    assert result.output == f"Error: {out}: No space left on device; no report was written\n"
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert not out.exists()  # made for the report, removed with its partial files


def test_a_report_fails_whole_and_keeps_the_earlier_one(tmp_path, monkeypatch):
    sweep = _sweep_folder(tmp_path / "sweep")
    out = tmp_path / "report"
    assert CliRunner().invoke(main, ["report", str(sweep), "--out", str(out)]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    FullDisk(out, 100).install(monkeypatch)
    assert CliRunner().invoke(main, ["report", str(sweep), "--out", str(out)]).exit_code == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_report_never_replaces_a_symlink(tmp_path):
    sweep = _sweep_folder(tmp_path / "sweep")
    out = tmp_path / "report"
    out.mkdir()
    target = tmp_path / "mine.md"
    target.write_text("mine")
    (out / "table1.md").symlink_to(target)
    result = CliRunner().invoke(main, ["report", str(sweep), "--out", str(out)])
    assert result.exit_code == 2 and result.output == (
        f"Error: {out}/table1.md is a symbolic link; hqf never writes or deletes through one "
        "(remove the link or choose another --out; nothing was written)\n"
    )
    assert target.read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["table1.md"]


def test_hqf_predict_on_a_full_disk_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    data = tmp_path / "new.csv"
    data.write_text("a,b\n0.1,0.2\n0.3,0.4\n")

    class Trained:  # the model of a finished run, as hqf.learn.rundir.saved.load gives it
        config = types.SimpleNamespace(dataset=str(data), label_column=None)
        n_features, class_names = 2, ["no", "yes"]

        def predict_proba(self, x):
            return np.full((len(x), 2), 0.5)

    monkeypatch.setattr(hqf.learn.rundir.saved, "load", lambda *args, **kwargs: Trained())
    (tmp_path / "run").mkdir()
    out = tmp_path / "preds" / "p.csv"
    out.parent.mkdir()
    FullDisk(out.parent, 10).install(monkeypatch)
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "run"), "--out", str(out)])
    assert result.output == f"Error: {out}: No space left on device; nothing was written\n"
    assert result.exit_code == 1 and not any(out.parent.iterdir())


def test_a_sweep_run_that_fills_the_disk_says_so_in_one_line(tmp_path, monkeypatch):
    out = tmp_path / "out"
    disk = FullDisk(out, 10**9).install(monkeypatch)

    def runner(config: dict, directory: pathlib.Path) -> None:
        disk.budget = disk.used  # the disk is full from here on: error.txt and status.json do not fit either
        raise RuntimeError(TORCH_WRITE_FAILED)

    usage = types.SimpleNamespace(total=1 << 30, used=1 << 30, free=0)
    monkeypatch.setattr(hqf.studies.sweep.shutil, "disk_usage", lambda path: usage)
    result = run_sweep(expand({"variants": {"v": {}}}, out), out, runner=runner)
    assert result.failed == (
        (out / "v" / "seed0", f"no space left on device writing {out}/v/seed0 (0 bytes free); free some and "
         "rerun the sweep to resume"),
    )  # fmt: skip


# -- default run folders ----------------------------------------------------------------------------------


def test_default_run_folders_never_collide(tmp_path, monkeypatch):
    class Frozen(datetime.datetime):  # every run starts in the same second
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz)

    monkeypatch.setattr(hqf.learn.rundir.folder.datetime, "datetime", Frozen)
    claimed: list[pathlib.Path] = []
    threads = [
        threading.Thread(target=lambda: claimed.append(hqf.learn.rundir.folder.default_run_dir(tmp_path)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed.append(hqf.learn.rundir.folder.default_run_dir(tmp_path))
    names = sorted(p.name for p in claimed)
    assert names == ["20260102-030405", *(f"20260102-030405-{k}" for k in (2, 3, 4, 5))]
    assert all(p.is_dir() and not any(p.iterdir()) for p in claimed)


@pytest.mark.parametrize("option", [["--backend", "nosuch"], ["--device", "cuda:7"]], ids=["backend", "device"])
def test_a_run_that_fails_its_checks_leaves_no_empty_default_folder(tmp_path, monkeypatch, option):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "older").mkdir()  # another run's folder, empty: never touched
    result = CliRunner().invoke(main, ["run", *option, "--quiet"])
    assert result.exit_code == 2 and result.output.startswith("Error: ") and len(result.output.splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["older"]


def test_a_claimed_default_folder_is_removed_only_while_empty_and_never_through_a_link(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError), hqf.learn.rundir.folder.claimed_run_dir(None) as folder:
        (folder / "status.json").write_text("{}")  # the failed run wrote something: it stays
        raise ConfigError("failed")
    assert (folder / "status.json").is_file()
    with pytest.raises(ConfigError), hqf.learn.rundir.folder.claimed_run_dir(tmp_path / "given") as given:
        given.mkdir()  # --out given: the user's folder, never removed here
        raise ConfigError("failed")
    assert given.is_dir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    hqf.learn.rundir.folder.remove_if_empty(link)
    assert link.is_symlink() and target.is_dir()


# -- hqf list ---------------------------------------------------------------------------------------------


class Impostor(Backend):
    name = "torch"

    def expval(self, circuit, angles):  # pragma: no cover - never run
        raise AssertionError


def test_hqf_list_shows_every_registration_of_a_clashing_name(fake_plugins):
    fake_plugins(Impostor)
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("broken plugins:")[0]  # the conflict is also listed among broken plugins
    lines = sorted(line.split() for line in listed.splitlines() if line.split()[:1] == ["torch"])
    assert [" ".join(words[1:]) for words in lines] == [
        "[hqf-tests] not used: also registered by plugin 'torch' [hqf]; choose one with HQF_PLUGINS",
        "[hqf] not used: also registered by plugin 'fake-classes' [hqf-tests]; choose one with HQF_PLUGINS",
    ]


def test_hqf_sweep_on_a_full_disk_is_one_line_naming_the_manifest(tmp_path, monkeypatch):
    grid = tmp_path / "grid.toml"
    grid.write_text("[variants]\nv = { epochs = 1 }\n")
    out = tmp_path / "out"
    FullDisk(out, 0).install(monkeypatch)
    result = CliRunner().invoke(main, ["sweep", str(grid), "--out", str(out)])
    assert result.exit_code == 1 and result.output.splitlines()[-1] == (
        f"Error: {out}/sweep.json: No space left on device"
    )
    assert [p.name for p in out.iterdir()] == []  # no manifest, no temporary file
