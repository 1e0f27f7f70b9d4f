"""Data for training and evaluation: sources read into memory, split, normalised, batched.

Small image data sets are kept as whole tensors (on the GPU when training there) and batched by
indexing, which is faster than DataLoader workers for data that fits in memory.
"""

from cnnkit.train.data.pipeline import DataBundle, Split, load_data

__all__ = ["DataBundle", "Split", "load_data"]
