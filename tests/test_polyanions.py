
import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings, strategies as st

import anionmotion
from anionmotion.analysis.polyanions import AUTO_CUTOFF_SOURCE, auto_cutoff, find_polyanions
from anionmotion.errors import IntegrityWarning, OptionError
from anionmotion.kernels.polyanion import ligand_vectors, pair_vectors, normalize_vectors

from _polyanion_models import OCT, TET, lattice

TRI = np.array([[10.0, 0, 0], [3.0, 9.5, 0], [-2.0, 1.5, 9.0]])


def make_traj(n_frames=4, cell=TRI, rng=None, noise=0.02, **kw):
    rng = np.random.default_rng(1) if rng is None else rng
    pos, sp = lattice(2, cell=cell, rng=rng, **kw)
    P = np.repeat(pos[None], n_frames, 0) + rng.normal(0, noise, (n_frames, len(pos), 3))
    frac = P @ np.linalg.inv(cell)
    frac -= np.floor(frac)
    return anionmotion.from_arrays(frac, cell, species=sp, frame_interval=0.1, style="fractional"), sp


def test_finds_tetrahedra_in_triclinic_cell_auto_cutoff():
    traj, sp = make_traj()
    pa = find_polyanions(traj, center="P", ligand="S")
    assert pa.n_anions == 8 and pa.n_ligands == 4 and pa.uniform
    assert pa.cutoff_source == AUTO_CUTOFF_SOURCE
    assert 2.1 < pa.cutoff < 4.0
    assert pa.connectivity == "isolated" and len(pa.shared) == 0
    npt.assert_allclose(pa.aal_A, 2.05, atol=0.03)
    npt.assert_allclose(pa.vpa_A3, abs(np.linalg.det(TRI)) / len(sp))
    sp = np.array(sp)
    assert np.all(sp[pa.centers] == "P") and np.all(sp[pa.ligands] == "S")
    for m, c, l in zip(pa.members, pa.centers, pa.ligands):
        assert m[0] == c and list(m[1:]) == sorted(l)
    ch = traj.read()
    v = pa.ligand_vectors(ch)
    assert v.shape == (4, 8, 4, 3)
    npt.assert_allclose(np.linalg.norm(v, axis=-1), 2.05, atol=0.15)
    assert pa.check_integrity(traj) == []


def test_user_cutoff_and_dict():
    traj, _ = make_traj()
    pa = find_polyanions(traj, center="P", ligand="S", cutoff=2.5)
    assert pa.cutoff == 2.5 and pa.cutoff_source == "user"
    d = pa.to_dict()
    assert d["cutoff"] == 2.5 and len(d["members"]) == 8


def test_com_and_vectors_whole_across_boundary():
    cell = np.eye(3) * 8.0
    c = np.array([0.1, 0.1, 0.1])       # centre at the corner: ligands wrap to the far side
    lig = c + TET * 1.5
    pos = np.concatenate([[c], lig])[None]
    traj = anionmotion.from_arrays(pos % 8.0, cell, species=["S"] + ["O"] * 4, frame_interval=1.0, style="wrapped")
    pa = find_polyanions(traj, center="S", ligand="O")
    ch = traj.read()
    npt.assert_allclose(pa.ligand_vectors(ch)[0, 0], TET * 1.5, atol=1e-12)
    m = np.array([32.065] + [15.9994] * 4)
    exp = (m[:, None] * np.concatenate([[c], lig])).sum(0) / m.sum()
    com = pa.com(ch)[0, 0]
    d = com - exp
    npt.assert_allclose(d - np.round(d / 8.0) * 8.0, 0, atol=1e-12)


def test_octahedra_and_corner_sharing():
    # two octahedra sharing one corner ligand
    cell = np.eye(3) * 20
    c1 = np.array([5.0, 5, 5])
    c2 = c1 + np.array([4.8, 0, 0])
    lig1 = c1 + OCT * 2.4
    lig2 = c2 + OCT * 2.4
    lig2 = np.delete(lig2, 1, axis=0)     # its −x ligand is lig1's +x ligand
    pos = np.concatenate([[c1], lig1, [c2], lig2])[None]
    sp = ["Nb"] + ["Cl"] * 6 + ["Nb"] + ["Cl"] * 5
    traj = anionmotion.from_arrays(pos, cell, species=sp, frame_interval=1.0)
    pa = find_polyanions(traj, center="Nb", ligand="Cl", cutoff=3.0)
    assert pa.connectivity == "corner-sharing"
    npt.assert_array_equal(pa.shared, [[0, 1, 1]])
    assert sorted(pa.ligand_counts.tolist()) == [5, 6]
    assert pa.ligands.shape == (2, 6) and (pa.ligands == -1).sum() == 1
    v = pa.ligand_vectors(traj.read())
    assert np.isnan(v).sum() == 3


@pytest.mark.parametrize("n_shared,kind", [(2, "edge-sharing"), (3, "face-sharing")])
def test_edge_face_sharing(n_shared, kind):
    cell = np.eye(3) * 30
    c1 = np.array([10.0, 10, 10])
    c2 = np.array([11.0, 10, 10])
    ligs = [c1 + np.array([0.5, 1.0 * np.cos(a), 1.0 * np.sin(a)]) for a in np.linspace(0, 2 * np.pi, n_shared,
                                                                                        endpoint=False)]
    own = [c1 - np.array([1.0, 0, 0]), c2 + np.array([1.0, 0, 0])]   # one private ligand each
    pos = np.array([c1, c2, *ligs, *own])[None]
    traj = anionmotion.from_arrays(pos, cell, species=["Si", "Si"] + ["O"] * (n_shared + 2), frame_interval=1.0)
    pa = find_polyanions(traj, center="Si", ligand="O", cutoff=1.5)
    assert pa.connectivity == kind


def test_clusters_without_centre():
    rng = np.random.default_rng(3)
    cell = np.eye(3) * 14
    # two icosahedral-like B6H6 octahedra (B–B 1.7 Å, B–H 1.2 Å outward)
    pos, sp = [], []
    for c in (np.array([3.0, 3, 3]), np.array([10.0, 9, 9])):
        for v in OCT:
            pos.append(c + v * 1.2)
            sp.append("B")
            pos.append(c + v * 2.4)
            sp.append("H")
    pos = np.array(pos)
    perm = rng.permutation(len(pos))
    pos, sp = pos[perm], [sp[i] for i in perm]
    traj = anionmotion.from_arrays(pos[None] % 14, cell, species=sp, frame_interval=1.0, style="wrapped")
    pa = find_polyanions(traj, cluster="B H")
    assert pa.is_cluster and pa.n_anions == 2 and pa.n_ligands == 6 and pa.ligand_species == "H"
    assert np.all(pa.centers == -1)
    assert pa.cutoff_source == AUTO_CUTOFF_SOURCE
    v = pa.ligand_vectors(traj.read())
    npt.assert_allclose(np.linalg.norm(v, axis=-1), 2.4, atol=1e-9)
    com = pa.com(traj.read())[0]
    exp = np.array([[3.0, 3, 3], [10.0, 9, 9]])
    got = com[np.argsort(com[:, 0])]
    npt.assert_allclose((got - exp + 7) % 14 - 7, 0, atol=1e-9)


def test_integrity_warning_names_anion_and_frame():
    traj0, sp = make_traj(n_frames=6, cell=np.eye(3) * 10, noise=0.0)
    ch = traj0.read()
    P = ch.positions.copy()
    pa = find_polyanions(traj0, center="P", ligand="S")
    a, lig = 3, pa.ligands[3, 2]
    P[4:, lig] += np.array([1.5, 0, 0])   # ligand moves away at frame 4
    traj = anionmotion.from_arrays(P, np.eye(3) * 10, species=sp, frame_interval=0.1)
    with pytest.warns(IntegrityWarning, match=rf"polyanion {a} \(centre atom {pa.centers[a]} \(P\)\) lost ligand "
                                              rf"atom {lig} at frame 4"):
        ev = pa.check_integrity(traj)
    assert len(ev) == 1 and ev[0]["frame"] == 4


def test_errors():
    traj, _ = make_traj(n_frames=2)
    with pytest.raises(OptionError, match="give center= and ligand="):
        find_polyanions(traj)
    with pytest.raises(OptionError, match="ligand= is required"):
        find_polyanions(traj, center="P")
    with pytest.raises(OptionError, match="not both"):
        find_polyanions(traj, center="P", ligand="S", cluster="P S")
    with pytest.raises(OptionError, match="no atoms of centre species B"):
        find_polyanions(traj, center="B", ligand="S")
    with pytest.raises(OptionError, match="both centre and ligand"):
        find_polyanions(traj, center="P", ligand="P")
    with pytest.raises(OptionError, match="positive distance"):
        find_polyanions(traj, center="P", ligand="S", cutoff=-1)
    with pytest.raises(OptionError, match="have no S ligand within the cutoff 0.500"):
        find_polyanions(traj, center="P", ligand="S", cutoff=0.5)
    with pytest.raises(OptionError, match="frame 7 out of range"):
        find_polyanions(traj, center="P", ligand="S", frame=7)
    with pytest.raises(TypeError, match="Trajectory or a Chunk"):
        find_polyanions(np.zeros((2, 3)), center="P", ligand="S")
    pa = find_polyanions(traj, center="P", ligand="S")
    with pytest.raises(OptionError, match="does not contain atom"):
        pa.ligand_vectors(traj.read(atoms="Li"))
    with pytest.raises(OptionError, match="no gap wider than"):
        auto_cutoff(np.linspace(1.0, 3.0, 200))
    with pytest.raises(OptionError, match="no centre–ligand distances"):
        auto_cutoff([])


def test_chunk_input_uses_trajectory_indices():
    traj, _ = make_traj(n_frames=3)
    pa = find_polyanions(traj, center="P", ligand="S")
    ch = traj.read(atoms="P S", frames=slice(1, 3))
    pb = find_polyanions(ch, center="P", ligand="S", frame=1)
    npt.assert_array_equal(pa.centers, pb.centers)
    npt.assert_array_equal(pa.ligands, pb.ligands)
    assert pb.frame == 2


def _brute(d, cell, n):
    """Shortest image over all integer shifts in [-n, n]³ (explicit oracle)."""
    g = np.arange(-n, n + 1)
    shifts = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3) @ cell      # (S, 3)
    cand = d[:, None, :] + shifts[None]
    return cand[np.arange(len(d)), np.argmin((cand ** 2).sum(-1), axis=1)]


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 10_000))
def test_kernel_matches_ref_and_bruteforce(seed):
    rng = np.random.default_rng(seed)
    cell = np.array([[8.0, 0, 0], [rng.uniform(-4, 4), 7.5, 0], [rng.uniform(-3, 3), rng.uniform(-3, 3), 7.0]])
    pos = rng.uniform(-20, 20, size=(3, 12, 3))
    centers = np.array([0, 5])
    ligs = np.array([[1, 2, 3, -1], [6, 7, 8, 9]])
    cells = np.repeat(cell[None], 3, 0)
    a = ligand_vectors(pos, cells, centers, ligs)
    b = ligand_vectors(pos, cells, centers, ligs, use_ext=False)
    npt.assert_allclose(a, b, atol=1e-10, equal_nan=True)
    d = (pos[:, 6:10] - pos[:, 5:6]).reshape(-1, 3)
    d -= np.rint(d @ np.linalg.inv(cell)) @ cell  # bring into the home cell: [-n, n]³ then covers every candidate
    brute = _brute(d, cell, n=3)
    npt.assert_allclose(a[:, 1].reshape(-1, 3), brute, atol=1e-10)
    pv = pair_vectors(pos, cells, [0, 5], [3, 9])
    npt.assert_allclose(pv, pair_vectors(pos, cells, [0, 5], [3, 9], use_ext=False), atol=1e-10)
    u = normalize_vectors(a[:, 1])
    npt.assert_allclose(np.linalg.norm(u, axis=-1), 1.0)
    npt.assert_allclose(u, normalize_vectors(a[:, 1], use_ext=False))


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 10_000), shift=st.lists(st.integers(-2, 2), min_size=3, max_size=3))
def test_invariant_under_permutation_translation_and_lattice_shifts(seed, shift):
    rng = np.random.default_rng(seed)
    traj, sp = make_traj(n_frames=1, rng=rng)
    ch = traj.read()
    pos = ch.positions[0]
    pa = find_polyanions(traj, center="P", ligand="S")
    perm = rng.permutation(len(pos))
    inv = np.argsort(perm)
    moved = pos[perm] + rng.normal(size=3) * 3
    moved[rng.integers(len(pos))] += np.asarray(shift) @ TRI
    t2 = anionmotion.from_arrays(moved[None], TRI, species=[sp[i] for i in perm], frame_interval=1.0)
    pb = find_polyanions(t2, center="P", ligand="S")
    assert pb.cutoff == pytest.approx(pa.cutoff) and pb.connectivity == pa.connectivity
    # same anions as atom sets (mapped back to the original indices)
    A = sorted(tuple(sorted(m)) for m in pa.members)
    B = sorted(tuple(sorted(perm[m])) for m in pb.members)
    assert A == B
    npt.assert_allclose(pb.aal_A, pa.aal_A, atol=1e-9)
    va = np.sort(np.linalg.norm(pa.ligand_vectors(ch), axis=-1).ravel())
    vb = np.sort(np.linalg.norm(pb.ligand_vectors(t2.read()), axis=-1).ravel())
    npt.assert_allclose(va, vb, atol=1e-9)


def test_edge_cases_zero_frames_one_anion():
    pos = np.concatenate([[[5, 5, 5]], 5 + TET * 1.5])[None]
    traj = anionmotion.from_arrays(pos, np.eye(3) * 10, species=["S"] + ["O"] * 4, frame_interval=1.0)
    pa = find_polyanions(traj, center="S", ligand="O")
    assert pa.n_anions == 1 and pa.cutoff_source == AUTO_CUTOFF_SOURCE
    ch = traj.read(frames=slice(0, 0))
    assert pa.ligand_vectors(ch).shape == (0, 1, 4, 3)
    assert pa.com(ch).shape == (0, 1, 3)
