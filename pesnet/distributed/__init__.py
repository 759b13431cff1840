"""Scaling out on Dask (``dask.distributed``): featurization chunks and groups of ensemble
members run on a cluster's workers, and the client assembles the same files one machine
writes, bit for bit.

Modules: :mod:`.cluster` (connect to a scheduler or start a local cluster), :mod:`.featurize`
(configurations in chunks on the workers, written in order by the client), :mod:`.shards`
(or written by the workers themselves as shards, indexed by the client), :mod:`.train`
(member groups on the workers, assembled and calibrated by the client), :mod:`.executor`
(the two as the pipeline's Dask executor). Nothing here imports the workflows
(:mod:`pesnet.pipeline`) or MLflow; the workflows hand these functions plain arguments.

Only the pipeline (and ``pesnet sweep``, whose grid points are tasks of its own) fans work
out. Dask is an optional dependency
(``pip install 'pesnet[dask]'``) and is imported inside functions only: without a
``[compute]`` section or ``--scheduler``, nothing imports it.
"""
