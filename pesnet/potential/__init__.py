"""The Behler–Parrinello ensemble potential: per-element networks, reference energies,
calibrated uncertainty."""
