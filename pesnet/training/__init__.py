"""Fitting a :class:`~pesnet.potential.model.Potential` to energies and forces."""
