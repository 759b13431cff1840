"""Small real-format DFT outputs for the ingest tests, written into a test's directory.

VASP: ASE's own test files (installed with ASE) hold one ionic step each, so a relaxation is
made from them the way VASP writes one: ``vasprun_pstress.xml`` (VASP 6.3, diamond C) with its
``<calculation>`` block repeated, and ``OUTCAR_example_1`` with its ionic step (from the first
``Iteration`` line to the energy block after ``FREE ENERGIE OF THE ION-ELECTRON SYSTEM``)
repeated; each step gets its own energy and forces so a selection can be told apart.

Quantum ESPRESSO: a two-step ``relax`` of Si (pw.x 7.2 layout, the parts ASE's
``espresso-out`` reader parses kept whole), compressed (alat 10.0 bohr against 10.3 at
equilibrium), so its printed pressure is positive. pw.x prints the stress as -σ (positive
under compression) in Ry/bohr³ and kbar; its numbers are in ``PW_STRESS_KBAR``.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from pathlib import Path

import ase

VASP = Path(ase.__file__).parent / "test" / "testdata" / "vasp"


def vasprun_relaxation(path, n_steps: int = 4) -> Path:
    """A vasprun.xml of ``n_steps`` ionic steps; step s moves atom 1 by 0.005 s (fractional),
    has forces ±0.1 s eV/Å along x, σ_xx (file, kbar) raised by 10 s, energies raised 0.01 s eV."""
    tree = ET.parse(VASP / "vasprun_pstress.xml")
    root = tree.getroot()
    first = root.find("calculation")
    at = list(root).index(first)
    root.remove(first)
    for step in range(n_steps):
        calc = copy.deepcopy(first)
        calc.find("structure/varray[@name='positions']")[1].text = (
            f" {0.25 + 0.005 * step:16.8f} {0.25:16.8f} {0.25:16.8f} ")
        for v, sign in zip(calc.find("varray[@name='forces']"), (1, -1)):
            v.text = f" {sign * 0.1 * step:16.8f} {0.0:16.8f} {0.0:16.8f} "
        xx = calc.find("varray[@name='stress']")[0]
        xx.text = f" {float(xx.text.split()[0]) + 10.0 * step:16.8f} {0.0:16.8f} {0.0:16.8f} "
        for i in calc.iter("i"):
            if i.get("name") in ("e_fr_energy", "e_wo_entrp", "e_0_energy"):
                i.text = f" {float(i.text) + 0.01 * step:16.8f} "
        root.insert(at + step, calc)
    tree.write(path, encoding="ISO-8859-1", xml_declaration=True)
    return Path(path)


def outcar_relaxation(path, n_steps: int = 3) -> Path:
    """An OUTCAR of ``n_steps`` ionic steps; step s has energies lowered by 0.01 s eV and the
    first atom's x force raised by 0.1 s eV/Å."""
    lines = (VASP / "OUTCAR_example_1").read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if "Iteration" in line)
    end = next(i for i, line in enumerate(lines) if "FREE ENERGIE OF THE ION" in line) + 5
    out = lines[:start]
    for step in range(n_steps):
        for line in lines[start:end]:
            line = line.replace("Iteration    1(", f"Iteration {step + 1:4d}(")
            line = line.replace("-68.22868532", f"{-68.22868532 - 0.01 * step:.8f}")
            line = line.replace("-68.23102426", f"{-68.23102426 - 0.01 * step:.8f}")
            line = line.replace("  0.030415  ", f"  {0.030415 + 0.1 * step:.6f}  ")
            out.append(line)
    Path(path).write_text("".join(out + lines[end:]))
    return Path(path)


#: Per ionic step of ``PW_RELAX``: "!    total energy" (Ry), the forces (Ry/bohr) and the
#: "total   stress" matrix's kbar columns (xx xy xz / yx yy yz / zx zy zz), as printed.
PW_ENERGY_RY = (-19.21740314, -19.21792260)
PW_FORCES_RY_BOHR = (((0.01231876, 0.00082210, 0.00082210),
                      (-0.01231876, -0.00082210, -0.00082210)),
                     ((0.01106218, 0.00073802, 0.00073802),
                      (-0.01106218, -0.00073802, -0.00073802)))
PW_STRESS_KBAR = (((71.36, 2.94, 0.00), (2.94, 71.63, 0.47), (0.00, 0.47, 71.57)),
                  ((71.23, 2.65, 0.00), (2.65, 71.48, 0.43), (0.00, 0.43, 71.43)))
PW_PRESSURE_KBAR = (71.52, 71.38)


def pw_relaxation(path) -> Path:
    """``PW_RELAX`` written to ``path``."""
    Path(path).write_text(PW_RELAX)
    return Path(path)


PW_RELAX = """
     Program PWSCF v.7.2 starts on 14Mar2024 at 10:02:11

     This program is part of the open-source Quantum ESPRESSO suite
     for quantum simulation of materials; please cite
         "P. Giannozzi et al., J. Phys.:Condens. Matter 21 395502 (2009);
         "P. Giannozzi et al., J. Phys.:Condens. Matter 29 465901 (2017);
         "P. Giannozzi et al., J. Chem. Phys. 152 154105 (2020);
          URL http://www.quantum-espresso.org",
     in publications or presentations arising from this work. More details at
     http://www.quantum-espresso.org/quote

     Parallel version (MPI), running on     4 processors

     Current dimensions of program PWSCF are:
     Max number of different atomic species (ntypx) = 10
     Max number of k-points (npk) =  40000
     Max angular momentum in pseudopotentials (lmaxx) =  4

     bravais-lattice index     =            0
     lattice parameter (alat)  =      10.0000  a.u.
     unit-cell volume          =     250.0000 (a.u.)^3
     number of atoms/cell      =            2
     number of atomic types    =            1
     number of electrons       =         8.00
     number of Kohn-Sham states=            4
     kinetic-energy cutoff     =      30.0000  Ry
     charge density cutoff     =     120.0000  Ry
     scf convergence threshold =      1.0E-10
     mixing beta               =       0.7000
     number of iterations used =            8  plain     mixing
     energy convergence thresh.=      1.0E-04
     force convergence thresh. =      1.0E-03
     Exchange-correlation= PBE
                           (   1   4   3   4   0   0   0)
     nstep                     =           50


     celldm(1)=  10.000000  celldm(2)=   0.000000  celldm(3)=   0.000000
     celldm(4)=   0.000000  celldm(5)=   0.000000  celldm(6)=   0.000000

     crystal axes: (cart. coord. in units of alat)
               a(1) = (  -0.500000   0.000000   0.500000 )
               a(2) = (   0.000000   0.500000   0.500000 )
               a(3) = (  -0.500000   0.500000   0.000000 )

     reciprocal axes: (cart. coord. in units 2 pi/alat)
               b(1) = ( -1.000000 -1.000000  1.000000 )
               b(2) = (  1.000000  1.000000  1.000000 )
               b(3) = ( -1.000000  1.000000 -1.000000 )


     PseudoPot. # 1 for Si read from file:
     ./Si.pbe-n-rrkjus_psl.1.0.0.UPF

     atomic species   valence    mass     pseudopotential
        Si             4.00    28.08550     Si( 1.00)

     No symmetry found


   Cartesian axes

     site n.     atom                  positions (alat units)
         1           Si  tau(   1) = (   0.0000000   0.0000000   0.0000000  )
         2           Si  tau(   2) = (   0.2600000   0.2500000   0.2500000  )

     number of k points=     3
                       cart. coord. in units 2pi/alat
        k(    1) = (  -0.2500000   0.2500000  -0.2500000), wk =   0.5000000
        k(    2) = (   0.2500000  -0.2500000   0.7500000), wk =   1.0000000
        k(    3) = (  -0.7500000   0.7500000   0.2500000), wk =   0.5000000

     Dense  grid:     4477 G-vectors     FFT dimensions: (  24,  24,  24)

     Starting wfcs are    8 randomized atomic wfcs

     total cpu time spent up to now is        0.4 secs

     Self-consistent Calculation

     iteration #  1     ecut=    30.00 Ry     beta= 0.70
     Davidson diagonalization with overlap
     ethr =  1.00E-02,  avg # of iterations =  2.0

     total cpu time spent up to now is        0.5 secs

     total energy              =     -19.20155461 Ry
     estimated scf accuracy    <       0.06279184 Ry

     End of self-consistent calculation

          k =-0.2500 0.2500-0.2500 (   537 PWs)   bands (ev):

    -4.9261   2.8123   5.4310   5.4317

          k = 0.2500-0.2500 0.7500 (   545 PWs)   bands (ev):

    -3.2308  -0.6035   4.2159   5.9027

          k =-0.7500 0.7500 0.2500 (   546 PWs)   bands (ev):

    -1.6810  -1.1622   3.0118   4.8844

     highest occupied level (ev):     7.1285

!    total energy              =     -19.21740314 Ry
     estimated scf accuracy    <       4.1E-11 Ry

     The total energy is the sum of the following terms:
     one-electron contribution =       4.66105823 Ry
     hartree contribution      =       1.08436812 Ry
     xc contribution           =     -12.47104231 Ry
     ewald contribution        =     -16.98236911 Ry
     smearing contrib. (-TS)   =       0.00000000 Ry

     convergence has been achieved in   9 iterations

     Forces acting on atoms (cartesian axes, Ry/au):

     atom    1 type  1   force =     0.01231876    0.00082210    0.00082210
     atom    2 type  1   force =    -0.01231876   -0.00082210   -0.00082210
     The non-local contrib.  to forces
     atom    1 type  1   force =    -0.00402104   -0.00011301   -0.00011301
     atom    2 type  1   force =     0.00402104    0.00011301    0.00011301

     Total force =     0.017475     Total SCF correction =     0.000000


     Computing stress (Cartesian axis) and pressure

          total   stress  (Ry/bohr**3)                   (kbar)     P=       71.52
   0.00048510   0.00002000   0.00000000           71.36        2.94        0.00
   0.00002000   0.00048690   0.00000320            2.94       71.63        0.47
   0.00000000   0.00000320   0.00048650            0.00        0.47       71.57


     BFGS Geometry Optimization

     number of scf cycles    =   1
     number of bfgs steps    =   0

     energy   new            =     -19.2174031373 Ry

     new trust radius        =       0.0873210472 bohr
     new conv_thr            =       1.0E-10 Ry

ATOMIC_POSITIONS (alat)
Si               0.0005000000        0.0000000000        0.0000000000
Si               0.2595000000        0.2500000000        0.2500000000



     Writing output data file ./pwscf.save/

     NEW-OLD atomic charge density approx. for the potential

     total cpu time spent up to now is        2.1 secs

     Self-consistent Calculation

     iteration #  1     ecut=    30.00 Ry     beta= 0.70
     Davidson diagonalization with overlap
     ethr =  1.00E-06,  avg # of iterations =  3.0

     End of self-consistent calculation

          k =-0.2500 0.2500-0.2500 (   537 PWs)   bands (ev):

    -4.9258   2.8131   5.4310   5.4317

          k = 0.2500-0.2500 0.7500 (   545 PWs)   bands (ev):

    -3.2308  -0.6035   4.2159   5.9027

          k =-0.7500 0.7500 0.2500 (   546 PWs)   bands (ev):

    -1.6810  -1.1622   3.0118   4.8844

     highest occupied level (ev):     7.1302

!    total energy              =     -19.21792260 Ry
     estimated scf accuracy    <       3.6E-11 Ry

     The total energy is the sum of the following terms:
     one-electron contribution =       4.66210144 Ry
     hartree contribution      =       1.08401207 Ry
     xc contribution           =     -12.47109562 Ry
     ewald contribution        =     -16.99294049 Ry
     smearing contrib. (-TS)   =       0.00000000 Ry

     convergence has been achieved in   7 iterations

     Forces acting on atoms (cartesian axes, Ry/au):

     atom    1 type  1   force =     0.01106218    0.00073802    0.00073802
     atom    2 type  1   force =    -0.01106218   -0.00073802   -0.00073802
     The non-local contrib.  to forces
     atom    1 type  1   force =    -0.00361207   -0.00010142   -0.00010142
     atom    2 type  1   force =     0.00361207    0.00010142    0.00010142

     Total force =     0.015697     Total SCF correction =     0.000000


     Computing stress (Cartesian axis) and pressure

          total   stress  (Ry/bohr**3)                   (kbar)     P=       71.38
   0.00048420   0.00001800   0.00000000           71.23        2.65        0.00
   0.00001800   0.00048590   0.00000290            2.65       71.48        0.43
   0.00000000   0.00000290   0.00048560            0.00        0.43       71.43


     number of scf cycles    =   2
     number of bfgs steps    =   1

     energy   old            =     -19.2174031373 Ry
     energy   new            =     -19.2179226012 Ry

     End of BFGS Geometry Optimization

     Final energy   =     -19.2179226012 Ry
Begin final coordinates

ATOMIC_POSITIONS (alat)
Si               0.0005000000        0.0000000000        0.0000000000
Si               0.2595000000        0.2500000000        0.2500000000
End final coordinates



     Writing output data file ./pwscf.save/

     init_run     :      0.31s CPU      0.33s WALL (       1 calls)
     electrons    :      1.52s CPU      1.60s WALL (       2 calls)

     PWSCF        :      2.41s CPU      2.60s WALL


   This run was terminated on:  10: 2:14  14Mar2024

=------------------------------------------------------------------------------=
   JOB DONE.
=------------------------------------------------------------------------------=
"""
