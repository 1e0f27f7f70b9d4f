"""Small torch modules for layer kinds that PyTorch has no single module for."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class PrePad(nn.Module):
    """Mixin: zero-pad (possibly asymmetrically) before the wrapped layer's forward, so the
    parameter names stay ``weight``/``bias`` (TensorFlow-style SAME with stride > 1)."""

    pre_pad: tuple[int, ...]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pre_pad))  # type: ignore[misc]


class PaddedConv1d(PrePad, nn.Conv1d):
    pass


class PaddedConv2d(PrePad, nn.Conv2d):
    pass


class PaddedConv3d(PrePad, nn.Conv3d):
    pass


class GlobalPool(nn.Module):
    """Mean or max over every spatial axis: (B, C, *spatial) -> (B, C)."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        return flat.mean(2) if self.mode == "avg" else flat.amax(2)

    def extra_repr(self) -> str:
        return self.mode


class ChannelsFirstEmbedding(nn.Embedding):
    """nn.Embedding whose output is (B, dim, L), the layout 1-D convolutions read."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).transpose(1, 2)


class Merge(nn.Module):
    """Sum or channel-concatenation of several inputs."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.mode == "add":
            out = xs[0]
            for x in xs[1:]:
                out = out + x
            return out
        return torch.cat(xs, dim=1)

    def extra_repr(self) -> str:
        return self.mode


class ScaledTanh(nn.Module):
    """LeCun's squashing function a * tanh(s * x)."""

    def __init__(self, a: float, s: float) -> None:
        super().__init__()
        self.a, self.s = a, s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a * torch.tanh(self.s * x)

    def extra_repr(self) -> str:
        return f"a={self.a}, s={self.s:.4g}"


class Maxout(nn.Module):
    """Max over groups of ``pieces`` consecutive channels."""

    def __init__(self, pieces: int) -> None:
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *rest = x.shape
        return x.view(b, c // self.pieces, self.pieces, *rest).amax(2)


class Subsample(nn.Module):
    """LeNet-5's trainable subsampling: window sum x coefficient + bias, per map."""

    def __init__(self, channels: int, kernel: tuple[int, ...]) -> None:
        super().__init__()
        self.kernel = kernel
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The paper's rule: uniform in +-2.4 / fan-in (fan-in: the window size).
        bound = 2.4 / math.prod(self.kernel)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(self.kernel)]
        summed = pool(x, self.kernel, self.kernel) * math.prod(self.kernel)
        shape = (1, -1) + (1,) * len(self.kernel)
        return summed * self.weight.view(shape) + self.bias.view(shape)


class PartialConv(nn.Module):
    """Convolution where output map j reads only the input maps in ``table[j]``.

    Only the connected kernels are parameters (``weight`` has one kernel per connection);
    the full, mostly zero weight is assembled in each forward pass.
    """

    def __init__(
        self,
        in_channels: int,
        table: tuple[tuple[int, ...], ...],
        kernel: tuple[int, ...],
        bias: bool,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.kernel = kernel
        self.rows = [j for j, row in enumerate(table) for _ in row]
        self.cols = [i for row in table for i in row]
        self.out_channels = len(table)
        self.weight = nn.Parameter(torch.empty(len(self.rows), *kernel))
        self.bias = nn.Parameter(torch.empty(len(table))) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = [0] * self.out_channels
        for j in self.rows:
            fan_in[j] += math.prod(self.kernel)
        bound = 2.4 / max(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = self.weight.new_zeros(self.out_channels, self.in_channels, *self.kernel)
        device = self.weight.device
        index = (torch.tensor(self.rows, device=device), torch.tensor(self.cols, device=device))
        full = full.index_put(index, self.weight)
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(self.kernel)]
        return conv(x, full, self.bias)


class EuclideanRBF(nn.Module):
    """y_i = sum_j (x_j - w_ij)^2 with fixed +1/-1 prototypes (a buffer, not trained)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        signs = torch.randint(0, 2, (out_features, in_features)).float() * 2 - 1
        self.register_buffer("prototypes", signs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.unsqueeze(1) - self.prototypes) ** 2).sum(-1)


class Product(nn.Module):
    """Broadcast elementwise product of several inputs, left to right."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class ChannelSlice(nn.Module):
    """Channels ``start:stop`` of the input, a view (ShuffleNetV2's channel split)."""

    def __init__(self, start: int, stop: int) -> None:
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start : self.stop]


class ResizeLike(nn.Module):
    """F.interpolate of the first input to the spatial size of the second (U-Net's odd
    sizes, FCN's output at the input size); the second input's values are not read."""

    def __init__(self, mode: str, align_corners: bool | None) -> None:
        super().__init__()
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        size = tuple(ref.shape[2:])
        return F.interpolate(x, size=size, mode=self.mode, align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, align_corners={self.align_corners}"
