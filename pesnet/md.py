"""Uncertainty-aware dynamics: watch the ensemble's force spread along a trajectory.

The score of a frame is its largest atomic force spread

    σ_max = max_i ‖σ_F,i‖        (eV/Å)

with σ_F,i the calibrated committee standard deviation of atom i's force vector (the
calculator's ``forces_std``; the norm is over x, y, z). It is the number active learning
thresholds (``pesnet active-learn``) and the one to watch in production MD: where it grows, the
trajectory has left the configurations the model was trained on.

>>> from pesnet.md import UncertaintyMonitor
>>> monitor = UncertaintyMonitor(atoms, stop_threshold=0.5, flag_threshold=0.2,
...                              logfile="uncertainty.log")
>>> dyn = Langevin(atoms, 1 * units.fs, temperature_K=300, friction=0.01)
>>> steps = monitor.run(dyn, 10_000)          # stops early once σ_max > 0.5 eV/Å
>>> monitor.stopped, monitor.flagged          # why it stopped; (step, σ_max) above 0.2

:class:`UncertaintyMonitor` is an ordinary ASE observer (``dyn.attach(monitor)``) for any
dynamics or optimizer; :meth:`UncertaintyMonitor.run` is a convenience that stops the run
cleanly instead of through an exception. It keeps copies of the flagged frames when asked
(``keep_frames=True``), ready to be labelled by a reference method.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np

from pesnet.errors import PesnetError

__all__ = ["UncertaintyMonitor", "UncertaintyExceeded", "Flag", "atomic_force_spread",
           "max_force_spread"]


def atomic_force_spread(forces_std) -> np.ndarray:
    """‖σ_F,i‖ per atom (N,) from the force spreads (N, 3), eV/Å."""
    forces_std = np.asarray(forces_std, dtype=float)
    return np.sqrt(np.einsum("ix,ix->i", forces_std, forces_std))


def max_force_spread(forces_std) -> float:
    """σ_max = max_i ‖σ_F,i‖ (eV/Å); 0 for no atoms."""
    spread = atomic_force_spread(forces_std)
    return float(spread.max()) if len(spread) else 0.0


class UncertaintyExceeded(PesnetError):
    """Raised by a :class:`UncertaintyMonitor` with ``stop_threshold`` to end a run.

    ``step`` (dynamics step), ``score`` (σ_max, eV/Å), ``atom`` (index of the most uncertain
    atom) and ``atoms`` (a copy of the frame).
    """

    def __init__(self, step, score, threshold, atom, atoms):
        self.step, self.score, self.threshold, self.atom, self.atoms = (
            step, score, threshold, atom, atoms)
        super().__init__(f"step {step}: largest atomic force spread {score:.3g} eV/Å (atom "
                         f"{atom}) exceeds the stop threshold {threshold:.3g} eV/Å")


class Flag(NamedTuple):
    """A frame above ``flag_threshold``: step, σ_max (eV/Å), the most uncertain atom, and a copy
    of the frame (``None`` unless ``keep_frames``)."""

    step: int
    score: float
    atom: int
    atoms: object = None


class UncertaintyMonitor:
    """ASE observer recording σ_max (see the module doc) every time it is called.

    ``atoms``: the structure being driven, with a calculator that provides ``forces_std``
    (:class:`~pesnet.calculator.PESNetCalculator`). ``flag_threshold`` (eV/Å): frames above
    it are recorded in :attr:`flagged` (with a copy of the frame if ``keep_frames``).
    ``stop_threshold`` (eV/Å): a frame above it ends the run — :meth:`run` returns, an
    attached observer raises :class:`UncertaintyExceeded`. ``logfile``: path, open stream or
    ``"-"`` (stdout) for one line per call. ``dynamics``: the dynamics whose step counter to
    use (set by :meth:`attach`/:meth:`run`; otherwise calls are counted).

    Reading the spread costs nothing extra: the dynamics has just computed the forces at these
    positions and the calculator returns its cached results.
    """

    def __init__(self, atoms, flag_threshold: float | None = None,
                 stop_threshold: float | None = None, keep_frames: bool = False,
                 logfile=None, dynamics=None):
        for name, value in (("flag_threshold", flag_threshold),
                            ("stop_threshold", stop_threshold)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be a positive force spread (eV/Å), got {value!r}")
        calc = atoms.calc
        if calc is None or "forces_std" not in getattr(calc, "implemented_properties", ()):
            raise PesnetError("UncertaintyMonitor needs atoms with a calculator that provides "
                              "forces_std (pesnet.calculator.PESNetCalculator)")
        self.atoms = atoms
        self.flag_threshold = flag_threshold
        self.stop_threshold = stop_threshold
        self.keep_frames = keep_frames
        self.dynamics = dynamics
        self.steps: list[int] = []
        self.scores: list[float] = []
        self.flagged: list[Flag] = []
        self.stopped: UncertaintyExceeded | None = None
        self._calls = 0
        self._log, self._own_log = _open_log(logfile)
        if self._log is not None:
            self._log.write(f"{'step':>8s} {'E_pot/eV':>14s} {'sigma_E/eV':>11s} "
                            f"{'sigma_F_max/eV/A':>17s} {'atom':>6s}  note\n")

    # -- as an ASE observer ---------------------------------------------------------------
    def attach(self, dynamics, interval: int = 1):
        """Attach to an ASE dynamics or optimizer (every ``interval`` steps)."""
        self.dynamics = dynamics
        dynamics.attach(self, interval=interval)
        return self

    def __call__(self):
        step = int(getattr(self.dynamics, "nsteps", self._calls))
        self._calls += 1
        calc = self.atoms.calc
        forces_std = calc.get_property("forces_std", self.atoms)
        spread = atomic_force_spread(forces_std)
        atom = int(np.argmax(spread)) if len(spread) else -1
        score = float(spread[atom]) if len(spread) else 0.0
        self.steps.append(step)
        self.scores.append(score)
        note = ""
        if self.flag_threshold is not None and score > self.flag_threshold:
            frame = None
            if self.keep_frames:
                frame = self.atoms.copy()
                frame.calc = None
            self.flagged.append(Flag(step, score, atom, frame))
            note = "flagged"
        stop = self.stop_threshold is not None and (score > self.stop_threshold
                                                    or not np.isfinite(score))
        if self._log is not None:
            energy = calc.get_property("energy", self.atoms)
            sigma_e = calc.get_property("energy_std", self.atoms)
            note = "stop" if stop else note
            self._log.write(f"{step:8d} {energy:14.6f} {sigma_e:11.5f} {score:17.5f} "
                            f"{atom:6d}  {note}\n")
            self._log.flush()
        if stop:
            frame = self.atoms.copy()
            frame.calc = None
            self.stopped = UncertaintyExceeded(step, score, self.stop_threshold, atom, frame)
            raise self.stopped

    # -- convenience ----------------------------------------------------------------------
    def run(self, dynamics, steps: int, interval: int = 1) -> int:
        """Run ``dynamics`` for up to ``steps`` steps with this monitor attached; returns the
        number of steps taken (fewer when σ_max crossed ``stop_threshold``; see
        :attr:`stopped`)."""
        if self.dynamics is not dynamics:
            self.attach(dynamics, interval)
        start = int(getattr(dynamics, "nsteps", 0))
        try:
            dynamics.run(steps)
        except UncertaintyExceeded:
            pass
        return int(getattr(dynamics, "nsteps", 0)) - start

    @property
    def max_score(self) -> float:
        """The largest σ_max seen so far (eV/Å)."""
        return max(self.scores) if self.scores else 0.0

    def history(self) -> np.ndarray:
        """(n_calls, 2) array of (step, σ_max)."""
        return np.column_stack([self.steps, self.scores]) if self.steps else np.zeros((0, 2))

    def close(self) -> None:
        if self._own_log and self._log is not None:
            self._log.close()
        self._log = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def _open_log(logfile):
    if logfile is None:
        return None, False
    if logfile == "-":
        return sys.stdout, False
    if hasattr(logfile, "write"):
        return logfile, False
    return open(logfile, "w"), True
