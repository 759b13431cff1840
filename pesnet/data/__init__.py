"""Data layer: ingest ASE-readable files into pesnet's HDF5 dataset, read it back, split it.

Public API: :class:`Dataset`, :func:`open_dataset`, :class:`ConfigBatch`,
:class:`DatasetWriter`, :func:`split_indices`, :class:`Split`, :func:`ingest`.
"""

from pesnet.data.dataset import ConfigBatch, Dataset, open_dataset
from pesnet.data.split import Split, split_indices
from pesnet.data.writer import DatasetWriter

__all__ = ["ConfigBatch", "Dataset", "DatasetWriter", "Split", "open_dataset", "split_indices"]
