import numpy as np


def fd_forces(atoms, calc, indices, h=1e-3):
    """Central finite-difference forces −∂E/∂x for the given atoms (reference for −∇E)."""
    a = atoms.copy()
    a.calc = calc
    out = np.zeros((len(indices), 3))
    for n, i in enumerate(indices):
        for k in range(3):
            a.positions[i, k] += h
            ep = a.get_potential_energy()
            a.positions[i, k] -= 2 * h
            em = a.get_potential_energy()
            a.positions[i, k] += h
            out[n, k] = -(ep - em) / (2 * h)
    return out


def rigid_motion(atoms, seed=0):
    """Copy of ``atoms`` rotated by a random rotation about its centre and translated."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    R = Rotation.random(random_state=rng).as_matrix()
    b = atoms.copy()
    c = b.positions.mean(0)
    b.positions = (b.positions - c) @ R.T + c + rng.normal(size=3)
    return b, R
