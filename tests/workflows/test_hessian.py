"""Finite-difference Hessian as plan → evaluate → assemble: chunks, checksummed checkpoint, and one
path for the CLI and the campaign (identical force constants, either resumes the other's run)."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from qdlab.engines.classical import LJCoulomb
from qdlab.engines.spec import EngineSpec
from qdlab.errors import QdlabError
from qdlab.workflows.hessian import (
    CheckpointDamaged,
    assemble_force_constants,
    evaluate,
    evaluate_chunk,
    plan_displacements,
)
from qdlab.workflows.phonons import fd_hessian, phonons

CLASSICAL = EngineSpec(name="classical")


@pytest.fixture(scope="module")
def cluster():
    from qdlab.build import PerovskiteRecipe, build
    from qdlab.workflows.relax import relax

    a = build(PerovskiteRecipe(composition="CsPbI3", size="2", neutrality="surface-charge"))
    out = relax(a, LJCoulomb(), fmax=0.05, steps=500).atoms
    out.constraints = []
    return out


def _rec(n_atoms: int) -> int:
    return 16 + 24 * n_atoms


def test_plan_chunks_assemble_equal_serial(cluster, tmp_path):
    """Two chunk files written by separate 'workers' + the main checkpoint assemble to the very Φ
    of one serial pass (the same forces, bit for bit); no engine is built for a complete run."""
    plan = plan_displacements(cluster, 0.01, CLASSICAL)
    assert plan.n_jobs == 6 * len(cluster) and plan.chunks(3)[-1][1] == plan.n_jobs
    forces: dict = {}
    evaluate(plan, range(plan.n_jobs), calc=LJCoulomb(), sink=forces.__setitem__)
    serial = assemble_force_constants(plan, forces)
    ck = tmp_path / "hessian.ckpt"
    reports = [evaluate_chunk(plan, ck, j0, j1, LJCoulomb) for j0, j1 in plan.chunks(2)]
    assert sum(r.computed for r in reports) == plan.n_jobs
    again = evaluate_chunk(plan, ck, *plan.chunks(2)[0], calc=lambda: pytest.fail("engine built for nothing"))
    assert again.computed == 0
    run = fd_hessian(cluster, None, 0.01, checkpoint=ck, engine_spec=CLASSICAL)
    assert run.reused == plan.n_jobs
    np.testing.assert_array_equal(run.force_constants_eV_A2, serial)
    assert ck.stat().st_size == plan.n_jobs * _rec(len(cluster))  # the chunks were merged into the main file
    with pytest.raises(QdlabError, match="only 10 of"):
        assemble_force_constants(plan, {j: forces[j] for j in range(10)})


def test_damaged_record_reuses_good_prefix(cluster, tmp_path):
    ck = tmp_path / "h.ckpt"
    ref = phonons(cluster, LJCoulomb(), checkpoint=ck, engine_spec=CLASSICAL)
    rec = _rec(len(cluster))
    data = bytearray(ck.read_bytes())
    data[40 * rec + 100] ^= 0xFF  # flip bits inside record 41
    ck.write_bytes(bytes(data))
    with pytest.warns(CheckpointDamaged, match=r"record 41 of \d+ is damaged \(checksum\); reusing the 40 good"):
        res = phonons(cluster, LJCoulomb(), checkpoint=ck, engine_spec=CLASSICAL)
    assert res.displacements_reused == 40
    np.testing.assert_array_equal(res.force_constants_eV_A2, ref.force_constants_eV_A2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the repaired file loads without a report
        assert phonons(cluster, LJCoulomb(), checkpoint=ck, engine_spec=CLASSICAL).displacements_reused == 6 * len(cluster)


def test_truncated_metadata_is_one_line_error(cluster, tmp_path):
    from qdlab.cli.main import app

    nc = tmp_path / "c.extxyz"
    cluster.write(nc, format="extxyz")
    out = tmp_path / "ph"
    out.mkdir()
    (out / "hessian.ckpt.json").write_text('{"key": "ab')  # cut off mid-write by a copy
    with pytest.raises(QdlabError, match="checkpoint metadata .* is damaged"):
        phonons(cluster, LJCoulomb(), checkpoint=out / "hessian.ckpt")
    res = CliRunner().invoke(app, ["phonons", str(nc), "-e", "classical", "--no-relax", "-o", str(out)])
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert len(errors) == 1 and errors[0].startswith("error: checkpoint metadata") and "is damaged" in errors[0]


def _campaign(tmp_path, name: str):
    """A relax → phonons campaign of one CsPbI3 2×2×2 model with the classical engine, run task by
    task as Dask workers would (phonons split into two chunk tasks)."""
    from qdlab.campaign.spec import expand, spec_from_dict

    spec = spec_from_dict({"name": name, "store": str(tmp_path / f"{name}.db"), "engines": [{"name": "classical"}],
                           "grid": [{"composition": "CsPbI3", "size": "2", "neutrality": "surface-charge"}],
                           "steps": [{"workflow": "relax", "fmax": 0.05, "rattle_A": 0.0},
                                     {"workflow": "phonons", "delta": 0.01}]})
    relax_task, ph_task = (t.to_dict() for t in expand(spec))
    return spec.store, str(tmp_path / f"{name}_files"), relax_task, ph_task


def _fc(folder) -> np.ndarray:
    with np.load(folder / "phonons.npz") as z:
        return z["force_constants_eV_A2"]


def test_cli_and_campaign_share_one_hessian(tmp_path):
    """Same structure, engine and δ: the CLI and the campaign give identical force constants, and
    either one resumes the other's interrupted Hessian from its checkpoint."""
    from qdlab.campaign.tasks import phonon_chunk, run_task, task_dir
    from qdlab.cli.main import app

    store, files, relax_task, ph_task = _campaign(tmp_path, "one")
    parent = run_task(relax_task, None, store, files)
    assert parent["status"] == "done", parent
    n_jobs = 6 * ph_task["n_atoms"]
    chunks = [phonon_chunk(ph_task, parent, files, j0, j1) for j0, j1 in ((0, n_jobs // 2), (n_jobs // 2, n_jobs))]
    assert [c["computed"] for c in chunks] == [n_jobs // 2, n_jobs - n_jobs // 2]
    done = run_task(ph_task, parent, store, files, chunks)
    assert done["status"] == "done", done
    camp = task_dir(files, ph_task["key"])
    structure = camp / "structure.extxyz"  # the relaxed model both paths start from

    runner = CliRunner()
    args = ["phonons", str(structure), "-e", "classical", "--no-relax", "--delta", "0.01", "--json", "-o"]
    res = runner.invoke(app, args + [str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(_fc(tmp_path / "cli"), _fc(camp))

    rec = _rec(ph_task["n_atoms"])
    # the campaign's run interrupted after 100 displacements → the CLI resumes it
    (tmp_path / "resume_cli").mkdir()
    (tmp_path / "resume_cli" / "hessian.ckpt").write_bytes((camp / "hessian.ckpt").read_bytes()[: 100 * rec])
    shutil.copy(camp / "hessian.ckpt.json", tmp_path / "resume_cli")
    res = runner.invoke(app, args + [str(tmp_path / "resume_cli")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["displacements_reused"] == 100
    np.testing.assert_array_equal(_fc(tmp_path / "resume_cli"), _fc(camp))

    # the CLI's run interrupted after 150 displacements → the campaign resumes it
    store2, files2, relax2, ph2 = _campaign(tmp_path, "two")
    shutil.copytree(task_dir(files, relax_task["key"]), task_dir(files2, relax2["key"]))
    ckpt = task_dir(files2, ph2["key"]) / "hessian.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes((tmp_path / "cli" / "hessian.ckpt").read_bytes()[: 150 * rec])
    shutil.copy(tmp_path / "cli" / "hessian.ckpt.json", ckpt.parent)
    done2 = run_task(ph2, parent, store2, files2)  # same keys: the relaxed file copied over
    assert done2["status"] == "done", done2
    assert done2["results"]["displacements_reused"] == 150
    np.testing.assert_array_equal(_fc(ckpt.parent), _fc(camp))
