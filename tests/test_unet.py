"""The built-in unet recipe equals U-Net as milesial/Pytorch-UNet writes it (UNet(3, 2,
bilinear=True)), here re-typed in plain torch without cnnkit: the same parameters, MACs
(torch's FlopCounterMode), state_dict layout (a strict load) and outputs in eval mode."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnkit
from cnnkit.analysis import totals

torch.set_num_threads(2)


class DoubleConv(nn.Module):
    def __init__(self, cin: int, cout: int, mid: int | None = None) -> None:
        super().__init__()
        mid = mid or cout
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout))

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = DoubleConv(cin, cout, cin // 2)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        dy, dx = x2.size(2) - x1.size(2), x2.size(3) - x1.size(3)
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class OutConv(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.inc = DoubleConv(channels, 64)
        self.down1, self.down2, self.down3 = Down(64, 128), Down(128, 256), Down(256, 512)
        self.down4 = Down(512, 1024 // 2)
        self.up1, self.up2 = Up(1024, 512 // 2), Up(512, 256 // 2)
        self.up3, self.up4 = Up(256, 128 // 2), Up(128, 64)
        self.outc = OutConv(64, classes)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x = self.up1(self.down4(x4), x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        return self.outc(self.up4(x, x1))


def _randomised(model: nn.Module) -> nn.Module:
    """Random weights and BN statistics, so eval-mode BN is not the identity."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                fresh = torch.randn(t.shape, generator=g)
                if name.endswith("running_var"):
                    fresh = 0.5 + torch.rand(t.shape, generator=g)
                elif t.dim() > 1:
                    fresh = fresh * (2.0 / t[0].numel()) ** 0.5
                t.copy_(fresh)
    return model


def test_unet_recipe_equals_the_hand_written_module():
    recipe = cnnkit.load_recipe("unet")
    ours, theirs = cnnkit.build(recipe).eval(), _randomised(UNet(3, 2)).eval()
    layout = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == layout
    ours.load_state_dict(theirs.state_dict(), strict=True)
    params = sum(p.numel() for p in theirs.parameters())
    assert totals(recipe.graph).params == params
    x = torch.randn(2, *recipe.input_shape, generator=torch.Generator().manual_seed(1))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        theirs(x[:1])
    assert totals(recipe.graph).macs == counter.get_total_flops() // 2
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert got.shape == expected.shape == (2, 2, 128, 128)
    scale = expected.abs().max().item()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * scale)
    assert not torch.allclose(expected[0], expected[1])
