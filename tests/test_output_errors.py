"""OS-level write failures are one line (#32 items 3, 4): a full disk (torch's zip writer, safetensors,
plain files), a read-only output folder, permission denied and a quota each exit 2 with one line
naming the folder, the reason and what was kept, never a traceback; a checkpoint save that fails
leaves the last complete checkpoint, and the same command resumes from it.

The failures are real wherever the machine allows it: a small tmpfs filled up or remounted read-only
(needs root, else skipped), a file size limit (RLIMIT_FSIZE: any user), capabilities dropped (root:
`setpriv`) or chmod (any other user). Only the quota is injected: no quota can be set up here, so
EDQUOT is raised at `tempfile.mkstemp`, the first write call of every atomic write."""

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from llm_recipe import files
from llm_recipe.cli import app
from llm_recipe.config import RecipeConfig
from llm_recipe.files import atomic_write, is_complete, write_complete
from llm_recipe.stages.context import RunContext
from llm_recipe.stages.contract import Stage, run_stage

TINY = ["--set", "model.preset=micro", "--set", "corpus.docs_per_source=20", "--set", "tokenizer.vocab_size=400",
        "--set", "pretrain.block_size=32", "--set", "pretrain.eval_every=10", "--set", "pretrain.save_every=1",
        "--max-steps", "4"]
PAIRS = '{"prompt": "q", "chosen": "good answer", "rejected": "bad answer"}\n'


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def error_line(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and not isinstance(res.exception, (OSError, RuntimeError)), res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith("error:")]
    return line


def _mount(path, options: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    """A 64 MB tmpfs of its own (a disk that can really fill up or turn read-only)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if not _mount(mnt, "size=64m"):
        pytest.skip("mounting a tmpfs needs root (tests/test_resume.py injects the full disk everywhere)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


FSIZE_PROBE = textwrap.dedent("""
    import resource, signal, sys, torch
    from safetensors.torch import save_file
    from llm_recipe.files import write_error_code
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, not a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    for save in (lambda: torch.save({"w": torch.zeros(10_000)}, sys.argv[1] + "/a.pt"),
                 lambda: save_file({"w": torch.zeros(10_000)}, sys.argv[1] + "/b.safetensors"),
                 lambda: open(sys.argv[1] + "/c.txt", "w").write("x" * 10_000)):
        try:
            save()
        except Exception as e:
            print(write_error_code(e), str(e).splitlines()[0])
""")


def test_every_writer_s_words_for_a_failed_write_are_recognised(tmp_path):
    """torch's zip writer has no errno ('unexpected pos N vs M'), safetensors says '(os error N)', Python
    an OSError: each a real failure under a file size limit, each recognised as one write error."""
    out = subprocess.run([sys.executable, "-c", FSIZE_PROBE, str(tmp_path)], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert len(out) == 3, out
    torch_code, torch_msg = out[0].split(" ", 1)
    assert "inline_container.cc" in torch_msg and torch_code == str(errno.ENOSPC)  # a short write: space ran out
    assert out[1].startswith(f"{errno.EFBIG} ") and "os error 27" in out[1]
    assert out[2].startswith(f"{errno.EFBIG} ")
    # torch opening a file on a read-only file system, in the words torch 2.13 uses
    ro = RuntimeError("[enforce fail at inline_container.cc:747] . open file failed with strerror: Read-only file system")
    assert files.write_error_code(ro) == errno.EROFS
    assert files.write_error_code(RuntimeError("CUDA out of memory")) is None
    assert files.write_error_code(PermissionError(errno.EACCES, "Permission denied")) == errno.EACCES


@pytest.mark.slow
def test_a_checkpoint_save_that_fails_keeps_the_last_one_and_the_same_command_resumes(tmpfs, monkeypatch):
    """Run 1: after checkpoint 1 the disk fills up, leaving room for checkpoint 2's weights but not its
    optimizer state (torch's zip writer hits the full disk). Run 2 (space again): resumes from 1; after
    checkpoint 2 the checkpoints folder turns read-only. Run 3 (writable again): resumes from 2, ends."""
    import torch

    from llm_recipe.train import loop

    run = tmpfs / "run"
    ckpts = run / "pretrain" / "checkpoints"
    real_prune, real_save, real_load = loop.prune_checkpoints, torch.save, loop.load_checkpoint
    done, torch_errors, loaded = set(), [], []

    def then_fail(run_dir, keep):  # after a checkpoint is saved: the disk fills up, or turns read-only
        real_prune(run_dir, keep)
        last = sorted(ckpts.iterdir())[-1].name
        if last == "step-0000001" and "full" not in done:
            done.add("full")
            room = sum((ckpts / last / n).stat().st_size for n in ("model.safetensors", "config.json",
                                                                     "generation_config.json"))
            st = os.statvfs(tmpfs)
            with open(tmpfs / "filler", "wb") as f:
                os.posix_fallocate(f.fileno(), 0, st.f_bavail * st.f_frsize - room - (256 << 10))
        elif last == "step-0000002" and "read-only" not in done:  # a bind mount: other files stay open
            done.add("read-only")
            subprocess.run(["mount", "--bind", str(ckpts), str(ckpts)], check=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(ckpts)], check=True)

    def save(obj, f, *a, **kw):  # only watches: the failure is the real one
        try:
            return real_save(obj, f, *a, **kw)
        except RuntimeError as e:
            torch_errors.append(str(e))
            raise

    monkeypatch.setattr(loop, "prune_checkpoints", then_fail)
    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(loop, "load_checkpoint", lambda path, *a: loaded.append(path.name) or real_load(path, *a))
    line = error_line(invoke("pretrain", "-o", run, *TINY))
    assert line.startswith(f"error: {ckpts / 'step-0000002'}: cannot write: no space left on device; kept: the last "
                           "complete checkpoint step-0000001 (the same command resumes from it); free some space"), line
    assert "unexpected pos" in torch_errors[-1] or "file write failed" in torch_errors[-1]  # torch's own words
    assert [p.name for p in ckpts.iterdir()] == ["step-0000001"] and is_complete(ckpts / "step-0000001")
    (tmpfs / "filler").unlink()
    line = error_line(invoke("pretrain", "-o", run, *TINY))
    assert loaded == ["step-0000001"]
    assert line.startswith(f"error: {ckpts / 'step-0000003'}: cannot write: read-only file system; kept: the last "
                           "complete checkpoint step-0000002 (the same command resumes from it); choose a writable"), line
    assert is_complete(ckpts / "step-0000002") and not (ckpts / "step-0000003").exists()
    subprocess.run(["umount", str(ckpts)], check=True)
    res = invoke("pretrain", "-o", run, *TINY)
    assert res.exit_code == 0, res.output
    assert loaded == ["step-0000001", "step-0000002"] and is_complete(run / "pretrain" / "model")


@contextlib.contextmanager
def made_read_only(folder):
    """`folder` (made, empty) as a folder this process cannot write: a read-only tmpfs (root), else
    chmod 555; yields the reason the error will give."""
    folder.mkdir(parents=True, exist_ok=True)
    if _mount(folder, "ro,size=1m"):
        try:
            yield "read-only file system"
        finally:  # a failed test too: a mount left behind keeps pytest from removing its folder
            subprocess.run(["umount", "-l", str(folder)], check=False)
        return
    if os.geteuid() == 0:
        pytest.skip("root without mount: no folder it cannot write")
    folder.chmod(0o555)
    try:
        yield "permission denied"
    finally:
        folder.chmod(0o755)


@pytest.fixture
def read_only_folder(tmp_path):
    with made_read_only(tmp_path / "ro") as reason:
        yield tmp_path / "ro", reason


def test_a_read_only_output_folder_is_one_line_for_every_kind_of_writer(tmp_path, read_only_folder):
    folder, reason = read_only_folder
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(PAIRS * 3, encoding="utf-8")
    line = error_line(invoke("prefs", "convert", pairs, "--out", folder / "out.jsonl"))  # atomic_write
    assert line.startswith(f"error: {folder / 'out.jsonl'}: cannot write: {reason}; kept: nothing"), line
    line = error_line(invoke("curate", "-c", "tiny", "-o", folder / "run", "--set", "corpus.docs_per_source=5",
                             "--set", "curate.input.sample_noise_per_type=0"))
    assert line.startswith(f"error: {folder / 'run'}") and reason in line, line  # a mkdir, before any work
    with pytest.raises(files.OutputUnwritable, match=f"{folder / 'model'}: cannot write: {reason}; kept: nothing"):
        write_complete(folder / "model", lambda d: (d / "w.safetensors").write_bytes(b"w"))


def test_an_existing_folder_as_the_output_file_is_one_line(tmp_path):
    (tmp_path / "out").mkdir()
    match = "a folder of that name exists; nothing written; give a file name"
    with pytest.raises(files.OutputUnwritable, match=match), atomic_write(tmp_path / "out") as f:
        f.write("x")
    assert list((tmp_path / "out").iterdir()) == [] and not list(tmp_path.glob(".out.*"))


EACCES_RUN = textwrap.dedent("""
    import sys
    from llm_recipe.files import OutputUnwritable, write_jsonl
    try:
        write_jsonl(sys.argv[1], [{"a": 1}])
    except OutputUnwritable as e:
        sys.exit(str(e))
""")


def test_permission_denied_is_one_line(tmp_path):
    """Root: the writer runs without the capabilities that let root write anywhere (setpriv), into a
    folder owned by another user; any other user: a folder chmod 555. (The CLI prints OutputUnwritable
    as it is: test_a_read_only_output_folder_is_one_line_for_every_kind_of_writer.)"""
    folder = tmp_path / "theirs"
    folder.mkdir()
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv: every folder is writable")
        os.chown(folder, 65534, 65534)
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    else:
        folder.chmod(0o555)
    res = subprocess.run([*prefix, sys.executable, "-c", EACCES_RUN, str(folder / "out.jsonl")],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"{folder / 'out.jsonl'}: cannot write: permission denied; kept: nothing (out.jsonl was not written); "
        "make the folder writable for this user or choose another one"]


def test_a_quota_is_one_line_and_an_input_that_cannot_be_read_is_not_called_unwritable(tmp_path, monkeypatch):
    import tempfile

    def over_quota(suffix=None, prefix=None, dir=None, **kw):  # as os.open says it: the temp file's path
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), os.path.join(dir, f"{prefix}k3j2{suffix}"))

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(PAIRS * 3, encoding="utf-8")
    (tmp_path / "out.jsonl").write_text("old\n")
    monkeypatch.setattr(tempfile, "mkstemp", over_quota)  # injected: no quota can be set up in a test
    line = error_line(invoke("prefs", "convert", pairs, "--out", tmp_path / "out.jsonl"))
    assert line.startswith(f"error: {tmp_path / 'out.jsonl'}: cannot write: disk quota exceeded; kept: out.jsonl "
                           "as it was;"), line
    assert (tmp_path / "out.jsonl").read_text() == "old\n"
    monkeypatch.undo()
    # an OSError about another file inside a writer (reading an input) is that error, not "cannot write"
    with pytest.raises(PermissionError), atomic_write(tmp_path / "x.txt"):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "input.jsonl"))


# ---- the stage contract: every stage, whatever writes in it (#32 after #30) ------------------------------
def _stage(name, run):
    return Stage(name, run, lambda ctx: {"k": 1}, lambda cfg: True)


def test_a_stage_that_cannot_write_is_one_line_and_the_stages_before_it_are_kept(tmp_path):
    run = tmp_path / "run"
    ctx = RunContext(RecipeConfig(output_dir=run))
    run_stage(ctx, _stage("first", lambda ctx: {"first": str(atomic_file(ctx.out / "first.txt"))}))
    with made_read_only(run / "second") as reason:
        def second(ctx):  # a plain open(), as a log line or a plot writes: no atomic writer to say it
            (ctx.out / "second" / "made.txt").write_text("x")
            return {}

        with pytest.raises(files.OutputUnwritable) as e:
            run_stage(ctx, _stage("second", second))
    assert str(e.value) == (f"{run}: cannot write: {reason}; kept: every stage finished before second (markers in "
                            "stages/); second is not marked done, the same command runs it again; "
                            f"{files.WRITE_ERRORS[e.value.errno][1]}")
    assert (run / "stages" / "first.json").is_file() and not (run / "stages" / "second.json").exists()


def test_a_stage_whose_marker_cannot_be_written_keeps_its_outputs_unmarked(tmp_path):
    ctx = RunContext(RecipeConfig(output_dir=tmp_path))
    with made_read_only(tmp_path / "stages") as reason, pytest.raises(files.OutputUnwritable) as e:
        run_stage(ctx, _stage("thing", lambda ctx: {"thing": str(atomic_file(ctx.out / "thing.txt"))}))
    assert str(e.value).startswith(f"{tmp_path / 'stages'}: cannot write: {reason}; kept: thing's outputs, not "
                                   "marked done (the same command runs the stage again);"), str(e.value)
    assert (tmp_path / "thing.txt").read_text() == "x" and not (tmp_path / "stages" / "thing.json").exists()


def atomic_file(path):
    with atomic_write(path) as f:
        f.write("x")
    return path


@pytest.mark.slow
def test_a_training_run_that_cannot_write_its_log_keeps_the_last_checkpoint(tmpfs, monkeypatch):
    """The run folder turns read-only after checkpoint 2: the next metrics line (a plain append, no
    atomic writer) fails; the line names the run folder and the checkpoint kept, and the same command,
    writable again, resumes from it and finishes."""
    from llm_recipe.train import loop

    run = tmpfs / "run"
    out, real_prune, real_load, loaded = run / "pretrain", loop.prune_checkpoints, loop.load_checkpoint, []

    def then_read_only(run_dir, keep):
        real_prune(run_dir, keep)
        if sorted((out / "checkpoints").iterdir())[-1].name == "step-0000002" and not loaded:
            subprocess.run(["mount", "--bind", str(out), str(out)], check=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(out)], check=True)

    monkeypatch.setattr(loop, "prune_checkpoints", then_read_only)
    monkeypatch.setattr(loop, "load_checkpoint", lambda path, *a: loaded.append(path.name) or real_load(path, *a))
    try:
        line = error_line(invoke("pretrain", "-o", run, *TINY, "--set", "pretrain.log_every=1"))
    finally:
        subprocess.run(["umount", str(out)], check=False)
    assert line.startswith(f"error: {out}: cannot write: read-only file system; kept: the last complete checkpoint "
                           "step-0000002 (the same command resumes from it); choose a writable"), line
    assert not (run / "stages" / "pretrain.json").exists()
    res = invoke("pretrain", "-o", run, *TINY, "--set", "pretrain.log_every=1")
    assert res.exit_code == 0, res.output
    assert loaded == ["step-0000002"] and is_complete(out / "model") and (run / "stages" / "pretrain.json").is_file()
