"""Reference-data recipes: seeded, reproducible sets of labelled configurations.

A recipe builds structures, samples them (thermal MD, strains, defects, surfaces) and labels
every configuration with a calculator from :mod:`pesnet.data.calculators`. The same recipe,
calculator and seed always produce the same configurations (one ``numpy.random.Generator``
seeded once; ASE's Langevin draws from it).

Recipes: ``cu-fcc`` (bulk MD at several temperatures, strained cells, a vacancy, a (111) slab),
``ethanol`` (gas-phase MD of one molecule at 500 K) and ``ethanol-dft`` (ethanol MD at 500 K and
1,000 K driven by GFN2-xTB, every frame labelled by DFT; the 1,000 K frames are a separate
config_type to hold out as out-of-distribution) and ``cuau-fcc`` (Cu–Au fcc alloys: random
solid solutions at x_Au = 0, 0.125, ..., 1, the ordered L1₂ Cu₃Au, L1₀ CuAu and L1₂ CuAu₃,
vacancies in solid solutions).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from pesnet.errors import InputError


@dataclass(frozen=True)
class Recipe:
    name: str
    build: Callable  # build(calculator, rng, scale) -> iterator of labelled Atoms
    description: str
    default_calculator: str


def _label(atoms, calculator, config_type: str, stress: bool):
    """A copy of ``atoms`` carrying a SinglePointCalculator with the reference labels."""
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = atoms.copy()
    atoms.info.clear()  # builders leave non-label metadata (e.g. adsorbate_info) behind
    atoms.calc = calculator
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    if stress:
        results["stress"] = atoms.get_stress()
    atoms.calc = None
    labelled = atoms.copy()
    labelled.calc = SinglePointCalculator(labelled, **results)
    labelled.info["config_type"] = config_type
    return labelled


def _md_samples(atoms, calculator, rng, temperature_K, n_samples, interval, config_type,
                stress, timestep_fs=2.0, equilibrate=50, labeller=None):
    """Langevin MD at ``temperature_K``; a labelled frame every ``interval`` steps.

    ``calculator`` drives the MD; ``labeller`` (default: the same) labels the frames, so a
    cheap method can sample the configurations an expensive one labels.
    """
    from ase import units
    from ase.md.langevin import Langevin
    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.29
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

    atoms = atoms.copy()
    atoms.calc = calculator
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature_K, friction=0.02,
                   rng=rng, fixcm=False)
    dyn.run(equilibrate)
    for _ in range(n_samples):
        dyn.run(interval)
        yield _label(atoms, labeller or calculator, config_type, stress)


def _cu_fcc(calculator, rng, scale: float = 1.0):
    from ase.build import bulk, fcc111

    n = lambda count: max(1, int(round(count * scale)))  # noqa: E731
    a0 = 3.59  # EMT's Cu lattice constant, Å
    cell32 = bulk("Cu", "fcc", a=a0, cubic=True).repeat((2, 2, 2))
    for temperature in (300, 600, 900, 1200):
        yield from _md_samples(cell32, calculator, rng, temperature, n(100), 10,
                              f"bulk_md_{temperature}K", stress=True)
    for _ in range(n(120)):
        strained = cell32.copy()
        strain = rng.uniform(-0.04, 0.04, size=(3, 3))
        strain = 0.5 * (strain + strain.T)
        strained.set_cell(cell32.cell[:] @ (np.eye(3) + strain), scale_atoms=True)
        strained.positions += rng.normal(0.0, 0.05, size=strained.positions.shape)
        yield _label(strained, calculator, "bulk_strained", stress=True)
    vacancy = cell32.copy()
    del vacancy[0]
    for temperature in (300, 900):
        yield from _md_samples(vacancy, calculator, rng, temperature, n(50), 10,
                              f"vacancy_md_{temperature}K", stress=True)
    slab = fcc111("Cu", size=(3, 3, 4), a=a0, vacuum=6.0, periodic=True)
    for temperature in (300, 700):
        yield from _md_samples(slab, calculator, rng, temperature, n(50), 10,
                              f"slab111_md_{temperature}K", stress=False)


def _ethanol(calculator, rng, scale: float = 1.0):
    from ase.build import molecule

    n = lambda count: max(1, int(round(count * scale)))  # noqa: E731
    # 1,250 frames 10 fs apart from Langevin MD at 500 K (an 80/10/10 split leaves 1,000 to
    # train on, the size of the rMD17 benchmark's training sets)
    yield from _md_samples(molecule("CH3CH2OH"), calculator, rng, 500, n(1250), 20,
                           "ethanol_md_500K", stress=False, timestep_fs=0.5, equilibrate=400)


def _md_driver(labeller):
    """The calculator that drives the ``ethanol-dft`` MD: GFN2-xTB (tblite) when installed.

    DFT forces at every 0.5 fs step would cost ~20x more than labelling one frame in twenty
    (and DFT-driven equilibration on top), so a cheap method samples the configurations and
    DFT labels them. Without tblite the labeller drives the MD itself (right physics, but a
    different trajectory, and slow for DFT), with a warning, so a run never silently samples
    differently from the shipped file.
    """
    from pesnet.data.calculators import make_calculator

    try:
        return make_calculator("gfn2-xtb")
    except InputError as error:
        warnings.warn(f"{error}; the labelling calculator drives the MD instead", stacklevel=3)
        return labeller


def _ethanol_dft(calculator, rng, scale: float = 1.0):
    from ase.build import molecule

    n = lambda count: max(1, int(round(count * scale)))  # noqa: E731
    driver = _md_driver(calculator)
    # 1,200 frames at 500 K (950 train / 50 validation / 200 test) and 200 at 1,000 K kept apart
    # as out-of-distribution; 0.5 fs steps, a frame every 10 fs after 200 fs of equilibration,
    # as in the ``ethanol`` recipe
    for temperature, count in ((500, 1200), (1000, 200)):
        yield from _md_samples(molecule("CH3CH2OH"), driver, rng, temperature, n(count), 20,
                               f"md_{temperature}K", stress=False, timestep_fs=0.5,
                               equilibrate=400, labeller=calculator)


# EMT's fcc lattice constants (Å): the minima of ASE's EMT (3.5898 and 4.0562 Å)
_A_CU, _A_AU = 3.590, 4.056

# The ordered phases: (name, x_Au, element at each of the cubic cell's four sites
# (0,0,0), (½,½,0), (½,0,½), (0,½,½))
ORDERED_PHASES = (("L12_Cu3Au", 0.25, ("Au", "Cu", "Cu", "Cu")),
                  ("L10_CuAu", 0.5, ("Cu", "Cu", "Au", "Au")),
                  ("L12_CuAu3", 0.75, ("Cu", "Au", "Au", "Au")))


def vegard_lattice_constant(x_au: float) -> float:
    """Vegard's law between EMT's Cu and Au: a(x) = (1 − x) a_Cu + x a_Au (Å)."""
    return (1.0 - x_au) * _A_CU + x_au * _A_AU


def random_solid_solution(x_au: float, rng, repeat: int = 2):
    """A ``repeat``³ cubic fcc Cu–Au cell (4 ``repeat``³ atoms) at the Vegard lattice
    constant, round(x N) sites drawn at random (``rng``) for Au."""
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=vegard_lattice_constant(x_au), cubic=True).repeat((repeat,) * 3)
    symbols = np.array(["Cu"] * len(atoms), dtype=object)
    symbols[rng.permutation(len(atoms))[:int(round(x_au * len(atoms)))]] = "Au"
    atoms.set_chemical_symbols(list(symbols))
    return atoms


def ordered_phase(name: str, a: float | None = None):
    """The 4-atom cubic cell of ordered phase ``name`` (``L12_Cu3Au``, ``L10_CuAu``,
    ``L12_CuAu3``) at lattice constant ``a`` (default: Vegard's)."""
    from ase import Atoms

    for phase, x_au, symbols in ORDERED_PHASES:
        if phase == name:
            a = vegard_lattice_constant(x_au) if a is None else a
            return Atoms(symbols, scaled_positions=[[0, 0, 0], [.5, .5, 0], [.5, 0, .5],
                                                    [0, .5, .5]], cell=[a, a, a], pbc=True)
    raise InputError(f"unknown ordered phase {name!r}; known: "
                     f"{', '.join(p for p, _, _ in ORDERED_PHASES)}")


def _relaxed(atoms, calculator, fmax: float = 1e-4, steps: int = 200):
    """``atoms`` (a copy, without calculator) with its cell relaxed by ``calculator`` (BFGS
    on a StrainFilter: atoms keep their fractional positions, exact for the ordered phases,
    whose sites feel no force by symmetry; ~10 steps where a FrechetCellFilter takes ~50)."""
    from ase.filters import StrainFilter
    from ase.optimize import BFGS

    atoms = atoms.copy()
    atoms.calc = calculator
    BFGS(StrainFilter(atoms), logfile=None).run(fmax=fmax, steps=steps)
    atoms.calc = None
    return atoms


def _strained(atoms, rng, max_strain: float = 0.04, rattle: float = 0.05):
    """A copy with a random symmetric strain (components uniform in ±``max_strain``) and
    Gaussian displacements of ``rattle`` Å, as in ``cu-fcc``'s strained cells."""
    strained = atoms.copy()
    strain = rng.uniform(-max_strain, max_strain, size=(3, 3))
    strain = 0.5 * (strain + strain.T)
    strained.set_cell(atoms.cell[:] @ (np.eye(3) + strain), scale_atoms=True)
    strained.positions += rng.normal(0.0, rattle, size=strained.positions.shape)
    return strained


def _rattled(atoms, rng, rattle: float = 0.05):
    rattled = atoms.copy()
    rattled.positions += rng.normal(0.0, rattle, size=rattled.positions.shape)
    return rattled


def _cuau_fcc(calculator, rng, scale: float = 1.0):
    """Cu–Au fcc, 32-atom (2×2×2 cubic) cells, every frame with energy, forces and stress.

    Per composition x_Au = 0, 0.125, ..., 1 (Vegard lattice constant; each frame family a new
    random arrangement): ``ss_x<x>_rattled`` (σ 0.05 Å), ``ss_x<x>_md_300K`` and
    ``ss_x<x>_md_600K`` (Langevin, 2 fs steps, 100 fs equilibration then a frame every 20 fs),
    ``ss_x<x>_strained`` (±4 % random strain, rattled). The ordered phases with the cell
    relaxed by the labelling calculator (the sites are fixed by symmetry), repeated 2×2×2:
    ``<phase>_relaxed`` (one frame), ``<phase>_rattled``, ``<phase>_strained``,
    ``<phase>_md_600K``. A vacancy (31 atoms) in solid solutions at x = 0.25, 0.5, 0.75:
    ``vacancy_x<x>`` (MD at 500 K).
    """
    n = lambda count: max(1, int(round(count * scale)))  # noqa: E731
    for x_au in np.arange(9) / 8:
        tag = f"ss_x{x_au:g}"
        for _ in range(n(6)):
            yield _label(_rattled(random_solid_solution(x_au, rng), rng), calculator,
                         f"{tag}_rattled", stress=True)
        for temperature in (300, 600):
            yield from _md_samples(random_solid_solution(x_au, rng), calculator, rng,
                                   temperature, n(10), 10, f"{tag}_md_{temperature}K",
                                   stress=True)
        for _ in range(n(6)):
            yield _label(_strained(random_solid_solution(x_au, rng), rng), calculator,
                         f"{tag}_strained", stress=True)
    for phase, _, _ in ORDERED_PHASES:
        cell = _relaxed(ordered_phase(phase), calculator).repeat((2, 2, 2))
        yield _label(cell, calculator, f"{phase}_relaxed", stress=True)
        for _ in range(n(8)):
            yield _label(_rattled(cell, rng), calculator, f"{phase}_rattled", stress=True)
        for _ in range(n(8)):
            yield _label(_strained(cell, rng), calculator, f"{phase}_strained", stress=True)
        yield from _md_samples(cell, calculator, rng, 600, n(6), 10, f"{phase}_md_600K",
                               stress=True)
    for x_au in (0.25, 0.5, 0.75):
        vacancy = random_solid_solution(x_au, rng)
        del vacancy[int(rng.integers(len(vacancy)))]
        yield from _md_samples(vacancy, calculator, rng, 500, n(10), 10, f"vacancy_x{x_au:g}",
                               stress=True)


RECIPES = {
    "cu-fcc": Recipe("cu-fcc", _cu_fcc, "Cu: bulk MD 300-1200 K, strains, vacancy, (111) slab",
                     "emt"),
    "ethanol": Recipe("ethanol", _ethanol, "ethanol molecule: 1,250 frames of MD at 500 K",
                      "gfn2-xtb"),
    "ethanol-dft": Recipe("ethanol-dft", _ethanol_dft,
                          "ethanol: 1,200 MD frames at 500 K + 200 at 1,000 K (xTB-driven MD, "
                          "DFT labels)", "pbe-def2svp"),
    "cuau-fcc": Recipe("cuau-fcc", _cuau_fcc,
                       "Cu-Au fcc: solid solutions x_Au = 0..1 (rattled, MD 300/600 K, strains), "
                       "L1_2 Cu3Au, L1_0 CuAu, L1_2 CuAu3, vacancies", "emt"),
}


def run_recipe(name: str, calculator, seed: int = 0, scale: float = 1.0):
    """Labelled configurations of recipe ``name``, generated lazily (an iterator of
    :class:`ase.Atoms`), so a caller can stream them to a file or stop early.

    ``scale`` multiplies every sample count (``0.1`` for a quick small set).
    """
    try:
        recipe = RECIPES[name]
    except KeyError:
        raise InputError(f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPES))}") from None
    if not 0 < scale < np.inf:
        raise InputError(f"--scale must be a positive finite number, got {scale}")
    return recipe.build(calculator, np.random.default_rng(seed), scale)
