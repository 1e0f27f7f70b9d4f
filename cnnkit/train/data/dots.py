"""``dots``: generated images of one bright Gaussian dot on noise, the target its centre (x, y).

A coordinate-regression set that needs no files: ``data.samples`` images at the stored size,
seeded by ``data.seed``. The centre is drawn uniformly at sub-pixel positions at least two
widths of the dot from the border, in the pixel-centre frame of ``cnnkit.train.data.points``
(x = column, y = row, origin at the top-left pixel's centre); its targets are points.
"""

from __future__ import annotations

import torch

from cnnkit.train.data.sources import Raw, Want, _check_synthetic_fits

NOISE = 0.03  # σ of the Gaussian pixel noise, on a background of 0 to 0.3 per channel


def dot_sigma(size: tuple[int, int]) -> float:
    """The dot's standard deviation in pixels: 1 up to 20-pixel sides, then 1/20 of the side."""
    return max(1.0, min(size) / 20)


def dots(samples: int, want: Want, seed: int) -> Raw:
    """``samples`` images ``[N, C, H, W]`` in [0, 1] and their dot centres ``[N, 2]``."""
    g = torch.Generator().manual_seed(seed)
    h, w = want.size
    _check_synthetic_fits(samples, 0, want.channels * h * w)
    sigma = dot_sigma(want.size)
    margin = min(2 * sigma, (min(h, w) - 1) / 2)
    cx = margin + (w - 1 - 2 * margin) * torch.rand(samples, generator=g)
    cy = margin + (h - 1 - 2 * margin) * torch.rand(samples, generator=g)
    peak = 0.5 + 0.2 * torch.rand(samples, 1, 1, 1, generator=g)
    background = 0.3 * torch.rand(samples, want.channels, 1, 1, generator=g)
    cols = torch.arange(w, dtype=torch.float32)[None, None, None, :]
    rows = torch.arange(h, dtype=torch.float32)[None, None, :, None]
    d2 = (cols - cx[:, None, None, None]) ** 2 + (rows - cy[:, None, None, None]) ** 2
    x = background + peak * torch.exp(-d2 / (2 * sigma**2))
    x = x + NOISE * torch.randn(samples, want.channels, h, w, generator=g)
    return Raw(x.clamp(0, 1).contiguous(), torch.stack([cx, cy], dim=1))
