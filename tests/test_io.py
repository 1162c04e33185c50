"""Output writing (`tlsjax._io`): atomic files, path checks before computing, output
folders that hold one complete run, and the command line's use of them."""

import json
import os
import re
from pathlib import Path

import pytest

from tlsjax import _io
from tlsjax._io import (
    MANIFEST,
    OutputDir,
    atomic_path,
    atomic_write_text,
    check_output_path,
    run_id,
    temp_path,
    write_json,
)
from tlsjax.cli import build_parser, main


def _tree(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else None


# ----------------------------------------------------------------- atomic files


def test_temporary_names_never_collide_with_a_users_file(tmp_path):
    target = tmp_path / "run.npz"
    t = temp_path(target)
    assert t.parent == tmp_path and t.suffix == ".npz" and t.name.startswith(".run.npz.")
    assert re.fullmatch(rf"\.run\.npz\.tlsjax-tmp-{os.getpid()}-[0-9a-f]{{8}}\.npz", t.name)
    assert temp_path(target) != t
    (tmp_path / "run.npz.tmp").write_text("mine")
    atomic_write_text(target, "new")
    assert (tmp_path / "run.npz.tmp").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz", "run.npz.tmp"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    with atomic_path(tmp_path / "sub" / "b.txt") as tmp:  # parents are created
        tmp.write_text("b")
    assert (tmp_path / "sub" / "b.txt").read_text() == "b"


# ----------------------------------------------------------------- single output files


def test_check_output_path(tmp_path, readonly_dir):
    with pytest.raises(ValueError, match="is a folder"):
        check_output_path(tmp_path, what="--json")
    with pytest.raises(ValueError, match=r"unsupported file type '.xyz'.*\.png"):
        check_output_path(tmp_path / "fit.xyz", suffixes=_io.FIGURE_SUFFIXES, what="--plot")
    check_output_path(tmp_path / "FIT.PNG", suffixes=_io.FIGURE_SUFFIXES)
    check_output_path(tmp_path / "no" / "dir" / "fit.json")  # created when written
    assert not (tmp_path / "no").exists()
    with pytest.raises(PermissionError, match="not writable"):
        check_output_path(readonly_dir / "x.json", what="--json")
    with pytest.raises(PermissionError, match="not writable"):
        check_output_path(readonly_dir / "new" / "x.json")
    (tmp_path / "afile").write_text("")
    with pytest.raises(FileExistsError, match="not a folder"):
        check_output_path(tmp_path / "afile" / "x.json")


def test_json_written_by_tlsjax_is_recognised(tmp_path):
    p = tmp_path / "r.json"
    p.write_text("{}")  # the user's
    with pytest.raises(FileExistsError, match="not written by tlsjax"):
        write_json(p, dict(a=1))
    assert p.read_text() == "{}"
    p.unlink()
    rid = run_id(dict(x=0.2))
    write_json(p, dict(a=1), run=rid)
    d = json.loads(p.read_text())
    assert d["a"] == 1 and d["written_by"]["program"] == "tlsjax"
    assert d["written_by"]["run_id"] == rid
    write_json(p, dict(a=2), run=rid)  # the same run (e.g. resumed) replaces it
    with pytest.raises(FileExistsError, match="another tlsjax run"):
        write_json(p, dict(a=3), run=run_id(dict(x=0.5)))
    write_json(p, dict(a=4), run=run_id(dict(x=0.5)), overwrite=True)
    assert json.loads(p.read_text())["a"] == 4


# ----------------------------------------------------------------- output folders


def _commit(root, files, group="g", **kw):
    with OutputDir(root, group=group, expect=files, **kw) as out:
        for name in files:
            out.path(name).write_text(f"{name} {kw}")
    return out


def test_output_dir_stages_and_commits_with_manifest_last(tmp_path):
    root = tmp_path / "a" / "b"
    out = OutputDir(root, expect=["x.csv"], group="g")
    assert not (tmp_path / "a").exists()  # nothing is created before the first file
    staged = out.path("x.csv")
    staged.write_text("1")
    assert staged.parent.name.startswith(".tlsjax-staging-") and not (root / "x.csv").exists()
    out.commit()
    assert sorted(p.name for p in root.iterdir()) == [MANIFEST, "x.csv"]
    m = json.loads((root / MANIFEST).read_text())
    assert m["files"] == ["x.csv"] and m["complete"] is True and m["groups"] == {"g": ["x.csv"]}


def test_output_dir_discards_on_error_and_removes_folders_it_created(tmp_path):
    root = tmp_path / "new" / "run"
    with pytest.raises(KeyboardInterrupt), OutputDir(root) as out:
        out.path("a.txt").write_text("a")
        raise KeyboardInterrupt
    assert not (tmp_path / "new").exists()
    _commit(tmp_path / "old", ["a.txt"])
    before = _tree(tmp_path / "old")
    with pytest.raises(RuntimeError), OutputDir(tmp_path / "old", group="g") as out:
        out.path("a.txt").write_text("replaced?")
        raise RuntimeError("plot failed")
    assert _tree(tmp_path / "old") == before


def test_output_dir_finds_a_users_file_before_writing(tmp_path):
    (tmp_path / "b.csv").write_text("mine")
    with pytest.raises(FileExistsError, match="b.csv exists and was not written by tlsjax"):
        OutputDir(tmp_path, expect=["a.csv", "b.csv"])
    assert _tree(tmp_path) == {"b.csv": b"mine"}
    (tmp_path / "c.csv").mkdir()
    with pytest.raises(FileExistsError, match="is a folder"):
        OutputDir(tmp_path, expect=["c.csv"], overwrite=True)


def test_output_dir_replaces_its_group_only_and_keeps_user_files(tmp_path):
    _commit(tmp_path, ["p1.png", "s.json"], group="reproduce")
    _commit(tmp_path, ["obs.csv"], group="observables")
    (tmp_path / "notes.txt").write_text("mine")
    _commit(tmp_path, ["p2.png", "s.json"], group="reproduce")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["notes.txt", "obs.csv", "p2.png", "s.json", MANIFEST]
    m = json.loads((tmp_path / MANIFEST).read_text())
    assert m["files"] == ["obs.csv", "p2.png", "s.json"]
    assert m["groups"] == {"observables": ["obs.csv"], "reproduce": ["p2.png", "s.json"]}
    (tmp_path / "obs.csv").unlink()  # the user deleted one: the manifest stops listing it
    _commit(tmp_path, ["p2.png"], group="reproduce")
    assert json.loads((tmp_path / MANIFEST).read_text())["files"] == ["p2.png"]


def test_damaged_manifest_is_reported_and_overwrite_is_the_way_out(tmp_path):
    _commit(tmp_path, ["a.txt"])
    (tmp_path / MANIFEST).write_text('{"files": ["a.tx')  # truncated
    with pytest.raises(FileExistsError, match="cannot be read.*--overwrite"):
        OutputDir(tmp_path, expect=["a.txt"])
    _commit(tmp_path, ["a.txt"], overwrite=True)
    assert json.loads((tmp_path / MANIFEST).read_text())["files"] == ["a.txt"]
    # names with paths in a manifest are never followed (nothing outside is deleted)
    (tmp_path.parent / "outside.txt").write_text("keep")
    (tmp_path / MANIFEST).write_text(json.dumps(
        dict(files=["../outside.txt", "a.txt"], groups={"g": ["../outside.txt", "a.txt"]})))
    _commit(tmp_path, ["b.txt"])
    assert (tmp_path.parent / "outside.txt").read_text() == "keep"


def test_interrupted_commit_is_recovered(tmp_path):
    # what a commit killed by SIGKILL leaves: the transitional manifest
    (tmp_path / "a.txt").write_text("new")
    (tmp_path / MANIFEST).write_text(json.dumps(dict(
        files=[], groups={}, pending=["a.txt", "b.txt"], complete=False)))
    _commit(tmp_path, ["a.txt", "b.txt"])
    assert json.loads((tmp_path / MANIFEST).read_text())["complete"] is True


def test_leftovers_of_dead_processes_are_removed(tmp_path):
    dead = 2**22 + 12345  # above the usual pid range
    stale = tmp_path / f".tlsjax-staging-{dead}-0123abcd"
    stale.mkdir()
    (stale / "x.png").write_text("x")
    (tmp_path / f".a.json.tlsjax-tmp-{dead}-0123abcd.json").write_text("x")
    (tmp_path / ".tlsjax-staging-notes").mkdir()  # not ours: no pid pattern
    _commit(tmp_path, ["a.json"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".tlsjax-staging-notes", "a.json", MANIFEST]


# ----------------------------------------------------------------- the command line


def test_cli_checks_outputs_before_computing(tmp_path, readonly_dir, capsys):
    ck = tmp_path / "ck.npz"
    es = ["es", "--cells", "3", "--realizations", "1", "--no-progress", "--checkpoint", str(ck)]
    cases = [
        ([*es, "--json", str(tmp_path)], "is a folder"),
        ([*es, "--json", str(tmp_path), "--overwrite"], "is a folder"),
        ([*es, "--json", str(readonly_dir / "es.json")], "not writable"),
        (["es", "--checkpoint", str(readonly_dir / "ck.npz"), "--cells", "3"], "not writable"),
        (["es", "--checkpoint", str(tmp_path), "--cells", "3"], "is a folder"),
        (["reproduce", "--quick", "--out", str(readonly_dir / "r")], "not writable"),
        (["kappa", "--T", "1", "--rho", "1", "--vl", "2", "--vt", "1", "--constant-C", "1e-3",
          "--json", str(readonly_dir / "k.json")], "not writable"),
        (["sensitivity", "--out", str(readonly_dir / "s")], "not writable"),
    ]
    for argv, match in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert match in err and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
    assert not ck.exists()  # nothing was computed


def test_cli_finds_users_file_in_out_before_computing(tmp_path, capsys):
    (tmp_path / "c_of_e.csv").write_text("mine")
    argv = ["observables", "--rho", "2200", "--vl", "5800", "--vt", "3800",
            "--cells", "3", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "c_of_e.csv exists and was not written by tlsjax" in capsys.readouterr().err
    assert _tree(tmp_path) == {"c_of_e.csv": b"mine"}
    (tmp_path / "c_of_e.csv").unlink()
    (tmp_path / "summary.txt").write_text("mine")
    assert main(["reproduce", "--quick", "--out", str(tmp_path)]) == 2
    assert "summary.txt exists" in capsys.readouterr().err
    assert _tree(tmp_path) == {"summary.txt": b"mine"}


@pytest.mark.parametrize("argv, match", [
    (["reproduce", "--quick", "--realizations", "0"], r"--realizations: must be an integer in \[1,"),
    (["reproduce", "--seed", str(10**23)], r"--seed: must be an integer in \[0, 1844"),
    (["reproduce", "--seed", "-1"], r"--seed: must be an integer in \[0, 1844"),
    (["sensitivity", "--realizations", "0"], "realizations"),
    (["sensitivity", "--seed", str(2**64)], "seed"),
    (["sensitivity", "--rho", "2200"], "only enter kappa"),
    (["observables", "--rho", "2200", "--vl", "5800", "--vt", "3800", "--g", "-1"],
     r"--g: must be a finite number in \(0, 0.2\)"),
    (["observables", "--rho", "2200", "--vl", "5800", "--vt", "3800", "--seed", "-3"],
     r"--seed: must be an integer in"),
])
def test_invalid_options_leave_no_output_folder(tmp_path, argv, match, capsys):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    assert re.search(match, capsys.readouterr().err)
    assert not out.exists()


def test_plain_tlsjax_takes_reproduce_options(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["--quick", "--realizations", "0", "--out", str(out)]) == 2
    assert re.search(r"--realizations: must be an integer in \[1,", capsys.readouterr().err)
    assert main(["--realizations", "0"]) == 2
    assert not out.exists()
    assert build_parser().parse_args(["reproduce"]).realizations is None  # 16, or 4 quick


def test_velocity_spelling_is_the_same_everywhere():
    parser = build_parser()
    for command, extra in (("sensitivity", []), ("kappa", ["--T", "1"]),
                           ("observables", []), ("qinv", ["--T", "1"])):
        for spelling in (["--vl", "5", "--vt", "3"], ["--v-l", "5", "--v-t", "3"]):
            args = parser.parse_args([command, *extra, "--rho", "1", *spelling])
            assert (args.vl, args.vt) == (5.0, 3.0), (command, spelling)


def test_small_cli_fixes(capsys):
    # the header names the lattice that ran
    assert main(["es", "--lattice", "sc", "--cells", "5", "--realizations", "1", "--energies",
                 "1", "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith("sc x=0.2 L=5:")
    # S-tau options next to --constant-C are refused, not silently ignored
    assert main(["kappa", "--T", "1", "--rho", "2200", "--vl", "5800", "--vt", "3800",
                 "--constant-C", "3e-4", "--g", "0.1", "--cells", "3"]) == 2
    assert "--constant-C selects the plain tunneling model" in capsys.readouterr().err
    # swapped velocities are refused
    assert main(["kappa", "--T", "1", "--rho", "2200", "--vl", "3000", "--vt", "3800",
                 "--constant-C", "3e-4"]) == 2
    assert "v_l must be >= v_t" in capsys.readouterr().err
    # a huge sample is refused with the memory estimate, a huge seed with the range
    assert main(["es", "--cells", "800"]) == 2
    assert re.search(r"needs about [\d.]+ [GTP]iB of memory", capsys.readouterr().err)
    assert main(["es", "--seed", str(10**23)]) == 2
    assert "in [0, 18446744073709551615]" in capsys.readouterr().err


def test_interrupted_rerun_never_replaces_a_complete_result(tmp_path, monkeypatch, capsys):
    from tlsjax.parallel._ensemble import RunningStats

    p = tmp_path / "es.json"
    argv = ["es", "--cells", "3", "--realizations", "3", "--energies", "1", "--no-progress",
            "--json", str(p)]
    assert main(argv) == 0
    complete = p.read_bytes()
    assert json.loads(complete)["partial"] is False

    original, calls = RunningStats.update, {"n": 0}

    def interrupted(self, batch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        original(self, batch)

    monkeypatch.setattr(RunningStats, "update", interrupted)
    capsys.readouterr()
    assert main(argv) == 130
    captured = capsys.readouterr()
    assert "INTERRUPTED after 1 of 3 realizations" in captured.out
    assert f"kept {p}" in captured.out and "interrupted (Ctrl-C)" in captured.err
    assert p.read_bytes() == complete
    p.unlink()
    calls["n"] = 0
    assert main(argv) == 130  # no complete result to keep: the partial one is written
    d = json.loads(p.read_text())
    assert d["partial"] is True and d["realizations"] == 1


def test_an_output_folder_through_a_link_to_nothing_is_refused(tmp_path, capsys):
    """A dangling link as the output folder (or above it) is refused before any work,
    not found only when the first file is written."""
    link = tmp_path / "gone"
    link.symlink_to(tmp_path / "nowhere")
    for folder in (link, link / "sub" / "deeper"):
        with pytest.raises(FileExistsError, match="is a link to nothing"):
            _io.check_folder_writable(folder)
    assert main(["reproduce", "--out", str(link), "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a link to nothing" in err[0]
    assert not (tmp_path / "nowhere").exists()
