"""The Ray engine against the local engine, on a local Ray and on a two-node cluster started here.

Ray on Linux binds to the machine's external address even when told
127.0.0.1, so every Ray here runs inside a network namespace of the test's
own (``unshare -n``, loopback up): nothing it opens is reachable from
outside.  A process namespace too keeps ``ray stop`` to this test's Ray.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DEFAULT_MODEL, ROOT

from tagger.cli import main

pytest.importorskip("ray.data", reason="the Ray engine's tests need Ray: pip install -e '.[ray]'")
CLI = f"{sys.executable} -c 'from tagger.cli import main; main()'"


NAMESPACE = ["unshare", "--net", "--pid", "--fork", "--mount-proc"]


def _can_unshare() -> bool:
    try:
        return subprocess.run([*NAMESPACE, "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_namespace = pytest.mark.skipif(not _can_unshare(), reason="needs unshare -n (a network namespace)")


def in_namespace(script: str, timeout: int = 400) -> subprocess.CompletedProcess:
    """Run a shell ``script`` in fresh network and process namespaces (only loopback; ``ray stop`` sees only
    this test's Ray, and every process ends with the script), with Ray's token authentication on."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PYTHONPATH": str(ROOT)}
    return subprocess.run([*NAMESPACE, "bash", "-euc", f"ip link set lo up\n{script}"], capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def incoming(tmp_path_factory):
    """The sample photos, one of them in a subfolder, and a hostile file: copied byte for byte and reported."""
    folder = tmp_path_factory.mktemp("incoming")
    photos = sorted((ROOT / "examples" / "photos").glob("*.jpg"))
    for photo in photos[:8]:
        shutil.copy(photo, folder / photo.name)
    (folder / "later").mkdir()
    for photo in photos[8:]:
        shutil.copy(photo, folder / "later" / photo.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG at all")
    return folder


@pytest.fixture(scope="module")
def tagged_locally(incoming, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    result = CliRunner().invoke(main, ["tag", str(incoming), str(out), "--model", str(DEFAULT_MODEL), "-q"])
    assert result.exit_code == 1 and "broken.jpg" in result.output  # one hostile file: exit 1, named
    return out


def assert_same_output(local: Path, other: Path) -> None:
    """Byte-identical tagged photos (the hostile one copied as is) and the same predictions.csv rows."""
    photos = sorted(p.relative_to(local) for p in local.rglob("*.jpg") if ".terc-tag" not in p.parts)
    assert len(photos) == 13 and photos == sorted(p.relative_to(other) for p in other.rglob("*.jpg")
                                                  if ".terc-tag" not in p.parts)
    for rel in photos:
        assert (local / rel).read_bytes() == (other / rel).read_bytes(), rel
    assert (local / "predictions.csv").read_text() == (other / "predictions.csv").read_text()


@needs_namespace
def test_a_local_ray_writes_what_the_local_engine_writes_and_a_rerun_does_nothing(incoming, tagged_locally,
                                                                                  tmp_path):
    out, summary = tmp_path / "out", tmp_path / "summary.json"
    tag = f"{CLI} tag {incoming} {out} --model {DEFAULT_MODEL} --engine ray -q"
    done = in_namespace(f"set +e\n{tag} --json-summary {summary}\necho exit=$?\n{tag}\necho exit=$?")
    assert "exit=1\nexit=0" in done.stdout, done.stdout + done.stderr
    report = json.loads(summary.read_text())
    assert report["tagged"] == 12 and [f["file"] for f in report["failed"]] == ["broken.jpg"]
    # quiet: the hostile file's line alone; Ray's notices went to its log
    assert done.stderr.strip().splitlines() == [f"terc-tag: failed: broken.jpg: {report['failed'][0]['reason']}"]
    assert (out / ".terc-tag" / "ray.log").stat().st_size > 0
    assert_same_output(tagged_locally, out)


@needs_namespace
def test_a_two_node_cluster_started_here_tags_the_same(incoming, tagged_locally, tmp_path):
    out = tmp_path / "out"
    ray = str(Path(sys.executable).with_name("ray"))
    done = in_namespace(f"""
trap '{ray} stop --force >/dev/null 2>&1 || true' EXIT
{ray} start --head --num-cpus 1 --port 6399 --include-dashboard false >/dev/null 2>&1
{ray} start --address 127.0.0.1:6399 --num-cpus 1 >/dev/null 2>&1
{CLI} tag {incoming} {out} --model {DEFAULT_MODEL} --engine ray --ray-address 127.0.0.1:6399 -q \
    || echo exit=$?
""", timeout=500)
    assert "exit=1" in done.stdout, done.stdout + done.stderr
    assert_same_output(tagged_locally, out)


def test_without_ray_the_engine_says_how_to_install_it(incoming, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("ray") else real(name, *a))
    result = CliRunner().invoke(main, ["tag", str(incoming), str(tmp_path / "out"), "--engine", "ray"])
    assert result.exit_code == 2 and 'pip install -e ".[ray]"' in result.output
    assert not (tmp_path / "out").exists()


@needs_namespace
def test_a_cluster_nothing_listens_on_is_one_line_at_once(incoming, tmp_path):
    done = in_namespace(f"{CLI} tag {incoming} {tmp_path / 'out'} --engine ray --ray-address 127.0.0.1:9 -q "
                        "|| echo exit=$?", timeout=120)
    assert "exit=2" in done.stdout, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == ["terc-tag: error: cannot reach the Ray cluster at 127.0.0.1:9: "
                                                "Connection refused"]


def test_a_ray_address_needs_the_ray_engine(incoming, tmp_path):
    result = CliRunner().invoke(main, ["tag", str(incoming), str(tmp_path / "out"), "--ray-address", "1.2.3.4:6379"])
    assert result.exit_code == 2 and "--ray-address needs --engine ray" in result.output


def after_first_batch(state: Path, signal: str) -> str:
    """Shell lines: once the driver (``$driver``) has recorded a batch in ``state``, send it ``signal``; echo its
    exit status (``stopped=``) and how many photos were recorded then (``recorded=``)."""
    return f"""for i in $(seq 600); do
    n=$(python3 -c "import sqlite3; print(sqlite3.connect('file:{state}?mode=ro', uri=True).execute(
        'select count(*) from photos').fetchone()[0])" 2>/dev/null || echo 0)
    [ "$n" -gt 0 ] && break
    sleep 0.2
done
kill -{signal} $driver; wait $driver; echo stopped=$?
echo recorded=$n"""


@needs_namespace
def test_a_killed_driver_loses_nothing_recorded_and_a_rerun_finishes(tmp_path):
    many = tmp_path / "many"
    many.mkdir()
    photos = sorted((ROOT / "examples" / "photos").glob("*.jpg"))
    for i in range(96):  # enough batches that the driver is killed between two of them
        os.link(photos[i % len(photos)], many / f"{photos[i % len(photos)].stem}-{i:03d}.jpg")
    out, summary = tmp_path / "out", tmp_path / "summary.json"
    state = out / ".terc-tag" / "state.sqlite"
    tag = f"{CLI} tag {many} {out} --model {DEFAULT_MODEL} --engine ray --batch-size 8 -q"
    done = in_namespace(f"""
set +e
{tag} &
driver=$!
{after_first_batch(state, "KILL")}
{tag} --json-summary {summary}
echo exit=$?
""", timeout=600)
    assert "stopped=137" in done.stdout and "exit=0" in done.stdout, done.stdout + done.stderr
    recorded = int(done.stdout.split("recorded=")[1].split()[0])
    report = json.loads(summary.read_text())
    assert 0 < recorded < 96 and report["unchanged"] >= recorded and report["tagged"] + report["unchanged"] == 96
    assert not report["failed"] and len(list(out.glob("*.jpg"))) == 96


@needs_namespace
def test_a_model_that_cannot_start_on_a_worker_is_one_line(incoming, tmp_path):
    # The driver's bundle claims another model_id than the one the worker loads: a node with another bundle.
    script = tmp_path / "driver.py"
    script.write_text(f"""
from pathlib import Path
from tagger.bundle import Bundle
from tagger.tagging.pipeline import tag_folder
from tagger.tagging.ray_engine import EngineError, RayEngine
bundle = Bundle({str(DEFAULT_MODEL)!r})
bundle.model_id = "0123456789abcdef"
try:
    tag_folder(Path({str(incoming)!r}), Path({str(tmp_path / 'out')!r}), bundle, RayEngine())
except EngineError as exc:
    print("error:", exc)
""")
    done = in_namespace(f"{sys.executable} {script}", timeout=300)
    assert done.stdout.strip() == (f"error: the model could not start on a Ray worker: the model "
                                   f"bundle {DEFAULT_MODEL.resolve()} on this node differs from the driver's"), \
        done.stdout + done.stderr
    assert not list((tmp_path / "out").glob("*.jpg"))


def test_the_write_stage_writes_only_the_version_it_decoded(tmp_path):
    from tagger.decode import read_and_decode
    from tagger.tagging.ray_engine import _read_again
    from tagger.tagging.stages import Job

    photo = tmp_path / "photo.jpg"
    shutil.copy(sorted((ROOT / "examples" / "photos").glob("*.jpg"))[0], photo)
    decoded = read_and_decode(tmp_path, Path("photo.jpg"), (224, 224))
    light = dataclasses.replace(decoded, data=None)  # as the row carries it
    job = Job(Path("photo.jpg"), decoded.stat)
    assert _read_again(tmp_path, job, light, False).data == photo.read_bytes()
    assert _read_again(tmp_path, dataclasses.replace(job, codes_only=True), light, False) is light  # nothing read
    photo.write_bytes(photo.read_bytes() + b"\0")  # changed after it was decoded
    assert _read_again(tmp_path, job, light, False) is None
    photo.unlink()
    assert _read_again(tmp_path, job, light, False) is None


@needs_namespace
def test_sigterm_to_the_driver_stops_and_records_and_hostile_names_are_tagged(tmp_path):
    """SIGTERM (a local Ray would exit 1 at once) ends the run as the local engine's does; a rerun finishes."""
    many = tmp_path / "many"
    many.mkdir()
    photos = sorted((ROOT / "examples" / "photos").glob("*.jpg"))
    for i in range(64):
        os.link(photos[i % len(photos)], many / f"p{i:03d}.jpg")
    hostile = [b"caf\xe9.jpg", b"line\nbreak.jpg", b"\x1b[31mred.jpg"]
    for name in hostile:
        shutil.copy(photos[0], os.path.join(os.fsencode(many), name))
    out, log, summary, again = tmp_path / "out", tmp_path / "s.log", tmp_path / "s.json", tmp_path / "again.json"
    state = out / ".terc-tag" / "state.sqlite"
    tag = f"{CLI} tag {many} {out} --model {DEFAULT_MODEL} --engine ray --batch-size 8 -q"
    done = in_namespace(f"""
set +e
{tag} --log-file {log} --json-summary {summary} &
driver=$!
{after_first_batch(state, "TERM")}
{tag} --json-summary {again}
echo exit=$?
""", timeout=600)
    assert "stopped=143" in done.stdout and "exit=0" in done.stdout, done.stdout + done.stderr
    assert "terc-tag: stopped: SIGTERM received" in done.stderr and "Traceback" not in done.stderr
    report = json.loads(summary.read_text())
    assert report["ended"] == "SIGTERM" and 0 < report["tagged"] < 67
    assert log.read_text().strip().endswith("stopped: SIGTERM received (exit 143)")
    final = json.loads(again.read_text())
    assert final["tagged"] + final["unchanged"] == 67 and not final["failed"]
    rows = (out / "predictions.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 68
    assert {"caf\\xe9.jpg", "line\\nbreak.jpg", "\\x1b[31mred.jpg"} <= {row.split(",")[0] for row in rows}
    assert set(hostile) <= set(os.listdir(os.fsencode(out)))
