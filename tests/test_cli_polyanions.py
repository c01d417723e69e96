"""``anionmotion polyanions``: identification, descriptors and the streamed integrity check."""

import json

import numpy as np

import anionmotion
from anionmotion.cli import main
from anionmotion.report import example_path


def test_polyanions_cli_on_the_example(tmp_path, capsys):
    out = tmp_path / "pa.json"
    assert main(["polyanions", example_path(), "--center", "S", "--ligand", "O", "--memory", "300MB",
                 "--json", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "SO4" in text and "intact along the run" in text
    d = json.loads(out.read_text())
    traj = anionmotion.open(example_path())
    pa = anionmotion.find_polyanions(traj, center="S", ligand="O")
    assert d["n_anions"] == pa.n_anions == int(np.sum(traj.species == "S"))
    assert d["n_ligands_per_anion"] == 4
    assert d["integrity"] == {"intact": True, "departures": []}
    assert min(d["bond_lengths_A"]) > 1.3 and max(d["bond_lengths_A"]) < 1.7


def test_polyanions_cli_detects_a_departure(tmp_path, capsys):
    # one SO4 whose O walks away from S over the run: the streamed check names the anion and the frame
    n = 40
    pos = np.zeros((n, 5, 3))
    pos[:, 0] = [5, 5, 5]
    for k, v in enumerate(np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3) * 1.5):
        pos[:, k + 1] = pos[:, 0] + v
    pos[20:, 1] += np.linspace(0, 3.0, n - 20)[:, None] * np.array([1, 0, 0])
    traj = anionmotion.from_arrays(pos, np.eye(3) * 10, species=["S", "O", "O", "O", "O"], frame_interval=0.1)
    pa = anionmotion.find_polyanions(traj, center="S", ligand="O")
    ev = pa.check_integrity(traj, frames_per_chunk=7, warn=False)
    assert len(ev) == 1 and ev[0]["ligand_atom"] == 1
    first_out = int(np.argmax(np.linalg.norm(pos[:, 1] - pos[:, 0], axis=1) > pa.max_ligand_distance[0]))
    assert ev[0]["frame"] == first_out
    # any chunk size gives the same answer
    assert pa.check_integrity(traj, frames_per_chunk=1, warn=False) == ev


def test_polyanions_cli_bad_option(tmp_path, capsys):
    assert main(["polyanions", example_path(), "--center", "Xx", "--ligand", "O", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Xx" in err
