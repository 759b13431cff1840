"""Properties of a cubic monatomic crystal (fcc, bcc) from any ASE calculator.

Each function takes one ASE calculator (an ensemble member's view, EMT, DFT, ...) and the
crystal (element symbol, ``"fcc"`` or ``"bcc"``, lattice constant), so the same code serves
every member and the reference. Units: Å, eV, GPa, J/m², THz.

**Equation of state.** Downhill in 2 % steps of a from ASE's reference lattice constant to
the nearest minimum a_g (at most 10 % away); energies E(V) of the conventional cubic cell at 7 volumes
V = a_g³ (1 + x), x ∈ [−3 %, +3 %], are fitted with Birch–Murnaghan
(:class:`ase.eos.EquationOfState`), and the fit is repeated once about its own minimum V₀.
a₀ = V₀^{1/3}; B = V ∂²E/∂V² at V₀ (eV/Å³ → GPa).

**Elastic constants** (Hooke's law, cubic). The cubic cell at a₀ is strained, h ↦ (1 + ε) h,
atoms following: a monatomic Bravais lattice has no internal relaxation, every atom being a
centre of inversion. With ε = diag(δ, 0, 0): σ_xx = C11 δ and σ_yy = C12 δ; with
ε_yz = ε_zy = γ/2: σ_yz = C44 γ. Each C is the least-squares slope over δ, γ ∈ {±0.5 %, ±1 %}:
the intercept absorbs any residual stress at a₀ and the symmetric points cancel the term
quadratic in the strain. Stress as in ASE, σ = (1/V) ∂E/∂ε.

**Vacancy.** In the n×n×n cubic supercell of N atoms at a₀,
E_vac = E_{N−1} − (N − 1)/N · E_N, with E_{N−1} relaxed at fixed cell (BFGS until
max |F| < fmax): the constant-volume formation energy of that supercell, so compare numbers
from the same supercell (3×3×3: 108 sites for fcc).

**Surfaces.** A slab of ``layers`` (hkl) planes at a₀ (1×1 surface cell, ``vacuum`` Å each
side), relaxed with all atoms free at fixed cell:
γ = (E_slab − N ε_bulk)/(2A), ε_bulk the bulk energy per atom at a₀, A = |a₁ × a₂|;
1 eV/Å² = 16.0218 J/m².

**Phonons** (frozen phonon). In the 2×2×2 cubic supercell, atom 0 is displaced by ±h along x,
y and z; Φ_{jα,0β} = −(F_jα(+h ê_β) − F_jα(−h ê_β))/(2h) (eV/Å²). For a monatomic Bravais
lattice D_αβ(q) = (1/m) Σ_j Φ_{jα,0β} e^{i q·(r_j − r_0)} is the exact harmonic dynamical
matrix at every q commensurate with the supercell (e^{i q·L} = 1 for its lattice vectors L),
periodic images included, no interpolation: Γ, X, L, W for fcc; Γ, H, N for bcc.
ν = √λ / 2π for the eigenvalues λ of D (negative ν: an unstable mode, ν = −√|λ| / 2π).
"""

from __future__ import annotations

import warnings

import numpy as np
from ase import units
from ase.build import bcc100, bcc111, bulk, fcc100, fcc111
from ase.eos import EquationOfState
from ase.optimize import BFGS
from threadpoolctl import threadpool_limits

#: Surface builders by crystal and facet.
SURFACES = {"fcc": {"100": fcc100, "111": fcc111}, "bcc": {"100": bcc100, "111": bcc111}}

#: Phonon frequencies reported: crystal → special point → {branch label: index among the
#: three frequencies sorted ascending}. At fcc X and L the transverse pair is degenerate
#: and below the longitudinal mode; bcc H is triply degenerate, bcc N has three branches.
PHONON_BRANCHES = {"fcc": {"X": {"TA": 0, "LA": 2}, "L": {"TA": 0, "LA": 2}},
                   "bcc": {"H": {"": 0}, "N": {"1": 0, "2": 1, "3": 2}}}

STRAINS = (-0.01, -0.005, 0.005, 0.01)
J_PER_M2 = 1e20 / units.J              # 1 eV/Å² in J/m²
#: √(eV / (Å² amu)) in rad/s, over 2π and 10¹²: THz per √λ
THZ = units.second / (2 * np.pi) / 1e12   # ASE's time unit is Å √(amu/eV)


def cubic_cell(symbol: str, crystal: str, a: float):
    """The conventional cubic cell (4 atoms fcc, 2 bcc) of lattice constant ``a`` (Å)."""
    return bulk(symbol, crystal, a=a, cubic=True)


def energy(atoms, calc) -> float:
    """Potential energy (eV) of ``atoms`` with ``calc``."""
    atoms.calc = calc
    return float(atoms.get_potential_energy())


def equation_of_state(calc, symbol: str, crystal: str, a_guess: float,
                      span: float = 0.03, n: int = 7) -> tuple[float, float]:
    """(a₀ in Å, B in GPa) from a Birch–Murnaghan fit of E(V) at ``n`` volumes within
    ±``span`` of the nearest minimum on a coarse grid (:func:`bracket_minimum`), refitted
    once about the fit's minimum (module doc); a ValueError if either finds no minimum."""
    v0 = bracket_minimum(calc, symbol, crystal, a_guess) ** 3
    for _ in range(2):
        volumes = v0 * (1 + np.linspace(-span, span, n))
        energies = [energy(cubic_cell(symbol, crystal, v ** (1 / 3)), calc) for v in volumes]
        try:
            with warnings.catch_warnings():   # ase.eos warns of a minimum outside the
                warnings.simplefilter("ignore", UserWarning)    # volumes: checked below
                v0, _, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
        except RuntimeError as error:      # scipy's curve_fit did not converge
            raise ValueError(f"the Birch–Murnaghan fit failed ({error})") from None
    if not volumes[0] <= v0 <= volumes[-1] or not b > 0:
        raise ValueError(f"no energy minimum within ±{100 * span:g} % of V = "
                         f"{volumes[n // 2]:.4g} Å³ (the fit gives V0 = {v0:.4g} Å³, B = "
                         f"{b / units.GPa:.4g} GPa)")
    return float(v0 ** (1 / 3)), float(b / units.GPa)


def bracket_minimum(calc, symbol: str, crystal: str, a_guess: float, step: float = 0.02,
                    max_steps: int = 5) -> float:
    """The lattice constant (Å) of the energy minimum nearest ``a_guess`` on a grid of
    relative ``step``: downhill from the guess until the energy rises. The EOS window is
    centred there, so a member whose minimum is a few % from ASE's reference value still
    gets a good fit, and one whose energy falls towards the edge of what it was trained on
    (a lower energy at a far larger a) does not drag the fit there."""
    cache = {}

    def e(k):
        if k not in cache:
            cache[k] = energy(cubic_cell(symbol, crystal, a_guess * (1 + step * k)), calc)
        return cache[k]

    k = 0
    direction = -1 if e(-1) < e(1) else 1
    while e(k + direction) < e(k):
        k += direction
        if abs(k) > max_steps:
            raise ValueError(f"no energy minimum for a within ±{100 * step * max_steps:g} % "
                             f"of {a_guess:.3f} Å (the energy keeps falling towards "
                             f"{a_guess * (1 + step * k):.3f} Å)")
    return float(a_guess * (1 + step * k))


def strained_stress(calc, atoms, strain: np.ndarray) -> np.ndarray:
    """ASE stress (6,) eV/Å³ of ``atoms`` under the symmetric ``strain`` (3, 3), atoms
    following the cell."""
    strained = atoms.copy()
    strained.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + strain).T, scale_atoms=True)
    strained.calc = calc
    return strained.get_stress()


def elastic_constants(calc, symbol: str, crystal: str, a0: float,
                      strains=STRAINS) -> dict[str, float]:
    """{"C11", "C12", "C44"} in GPa from the stress–strain slopes at a₀ (module doc)."""
    atoms = cubic_cell(symbol, crystal, a0)
    strains = np.asarray(strains, float)
    axial, shear = [], []
    for d in strains:
        axial.append(strained_stress(calc, atoms, np.diag([d, 0.0, 0.0]))[[0, 1]])
        e = np.zeros((3, 3))
        e[1, 2] = e[2, 1] = d / 2         # engineering shear γ_yz = 2 ε_yz = d
        shear.append(strained_stress(calc, atoms, e)[3])
    axial = np.array(axial)
    slope = lambda y: np.polyfit(strains, y, 1)[0] / units.GPa  # noqa: E731
    return {"C11": float(slope(axial[:, 0])), "C12": float(slope(axial[:, 1])),
            "C44": float(slope(np.array(shear)))}


def relax(atoms, calc, fmax: float = 0.01, steps: int = 300) -> float:
    """Relax positions at fixed cell (BFGS, max |F| < ``fmax`` eV/Å); the final energy (eV).
    Warns, and keeps the last energy, if ``steps`` were not enough."""
    atoms.calc = calc
    optimizer = BFGS(atoms, logfile=None)
    # one BLAS thread: BFGS diagonalises a 3N×3N Hessian every step (321×321 for the
    # vacancy), small enough that a second thread on a busy machine costs seconds
    with threadpool_limits(limits=1, user_api="blas"):
        converged = optimizer.run(fmax=fmax, steps=steps)
    if not converged:
        warnings.warn(f"relaxation of {atoms.get_chemical_formula()} stopped after {steps} "
                      f"steps above fmax {fmax} eV/Å", RuntimeWarning, stacklevel=2)
    return float(atoms.get_potential_energy())


def vacancy_formation_energy(calc, symbol: str, crystal: str, a0: float, repeat: int = 3,
                             fmax: float = 0.01) -> float:
    """E_vac (eV) in the ``repeat``³ cubic supercell at a₀, relaxed (module doc)."""
    perfect = cubic_cell(symbol, crystal, a0).repeat(repeat)
    n = len(perfect)
    e_perfect = energy(perfect, calc)
    defect = perfect.copy()
    del defect[0]
    return relax(defect, calc, fmax) - (n - 1) / n * e_perfect


def surface_energy(calc, symbol: str, crystal: str, a0: float, facet: str,
                   layers: int = 9, vacuum: float = 8.0, fmax: float = 0.01) -> float:
    """γ (J/m²) of the relaxed (``facet``) slab at a₀ (module doc)."""
    cell = cubic_cell(symbol, crystal, a0)
    e_bulk = energy(cell, calc) / len(cell)
    slab = SURFACES[crystal][facet](symbol, size=(1, 1, layers), a=a0, vacuum=vacuum)
    e_slab = relax(slab, calc, fmax)
    area = float(np.linalg.norm(np.cross(slab.cell[0], slab.cell[1])))
    return (e_slab - len(slab) * e_bulk) / (2 * area) * J_PER_M2


def force_constants(calc, symbol: str, crystal: str, a0: float, repeat: int = 2,
                    h: float = 0.01):
    """(supercell, Φ) with Φ (N, 3, 3) eV/Å²: Φ[j, α, β] = ∂²E/∂u_jα ∂u_0β by central
    differences of the forces when atom 0 moves by ±``h`` Å along β (module doc)."""
    supercell = cubic_cell(symbol, crystal, a0).repeat(repeat)
    phi = np.zeros((len(supercell), 3, 3))
    for beta in range(3):
        forces = []
        for sign in (1.0, -1.0):
            moved = supercell.copy()
            moved.positions[0, beta] += sign * h
            moved.calc = calc
            forces.append(moved.get_forces())
        phi[:, :, beta] = -(forces[0] - forces[1]) / (2 * h)
    return supercell, phi


def special_point(symbol: str, crystal: str, a0: float, name: str) -> np.ndarray:
    """Cartesian q (1/Å, including 2π) of the special point ``name`` (ASE's labels: G, X, L,
    W, ... for fcc; G, H, N, P for bcc) of the primitive cell at a₀."""
    primitive = bulk(symbol, crystal, a=a0)
    scaled = primitive.cell.bandpath(npoints=0).special_points[name]
    return 2 * np.pi * scaled @ primitive.cell.reciprocal()


def phonon_frequencies(calc, symbol: str, crystal: str, a0: float, points=("G", "X"),
                       repeat: int = 2, h: float = 0.01) -> dict[str, np.ndarray]:
    """{point: (3,) frequencies in THz, ascending} at the special ``points``, from one set of
    force constants (module doc); a point not commensurate with the supercell is an error."""
    supercell, phi = force_constants(calc, symbol, crystal, a0, repeat, h)
    r = supercell.positions - supercell.positions[0]
    mass = supercell.get_masses()[0]
    out = {}
    for name in points:
        q = special_point(symbol, crystal, a0, name)
        turns = np.asarray(supercell.cell) @ q / (2 * np.pi)
        if not np.allclose(turns, np.round(turns), atol=1e-8):
            raise ValueError(f"q point {name} is not commensurate with the "
                             f"{repeat}x{repeat}x{repeat} cubic supercell")
        d = np.einsum("jab,j->ab", phi, np.exp(1j * r @ q)) / mass
        eigenvalues = np.linalg.eigvalsh((d + d.conj().T) / 2)
        out[name] = np.sign(eigenvalues) * np.sqrt(np.abs(eigenvalues)) * THZ
    return out
