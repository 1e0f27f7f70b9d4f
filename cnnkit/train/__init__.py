"""Training: run configuration, run folders, the plan, the loop, checkpoints, evaluation, data.

`config`, `runs` and `plan` import torch only inside functions, so the pure commands may read
a recipe's `train:` and `data:` sections without it; the loop and the data pipeline are torch.
"""
