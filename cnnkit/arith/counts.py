"""Parameter and multiply-accumulate counts of one convolution, on plain ints.

Convention (as fvcore and torchvision's published GFLOPS): one MAC is one fused
multiply-add of a weight and an input; bias additions are not MACs. FLOPs = 2 x MACs.
A transposed convolution is counted per *input* pixel: each input value is multiplied by
every weight of its group once (counting per output pixel overcounts by up to stride^d).
"""

from __future__ import annotations

from math import prod

from cnnkit.errors import InputError


def check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    """Raise unless both channel counts divide by ``groups`` (PyTorch's rule)."""
    if groups < 1:
        raise InputError(f"--groups: expected a positive integer, got {groups}")
    if in_channels % groups:
        raise InputError(f"--groups {groups} does not divide the {in_channels} input channels")
    if out_channels % groups:
        raise InputError(f"--groups {groups} does not divide --out-channels {out_channels}")


def conv_weights(
    in_channels: int,
    out_channels: int,
    kernel: tuple[int, ...],
    groups: int = 1,
) -> int:
    """Weight count (no bias) of a conv or transposed conv: out * in/groups * prod(kernel)."""
    return out_channels * (in_channels // groups) * prod(kernel)


def conv_macs(
    in_channels: int,
    out_channels: int,
    kernel: tuple[int, ...],
    out_spatial: tuple[int, ...],
    groups: int = 1,
) -> int:
    """MACs of a convolution: every output element sums in/groups * prod(kernel) products."""
    return out_channels * prod(out_spatial) * (in_channels // groups) * prod(kernel)


def transposed_macs(
    in_channels: int,
    out_channels: int,
    kernel: tuple[int, ...],
    in_spatial: tuple[int, ...],
    groups: int = 1,
) -> int:
    """MACs of a transposed convolution, counted per input pixel (see module docstring)."""
    return in_channels * prod(in_spatial) * (out_channels // groups) * prod(kernel)
