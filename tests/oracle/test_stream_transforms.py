"""``data.sample_augment`` (cnnkit.train.data.transforms) against torchvision itself.

torchvision's transforms draw from the global RNG; cnnkit's draw the same numbers in the same
order from a generator. Seeding both with one seed must give the same crop boxes (including the
10-attempt fallback to a centre crop) and the same output pixels, bit for bit (the PIL path of
RandomResizedCrop, RandomHorizontalFlip and ColorJitter).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.train.data.transforms import augment_image, resized_crop_box

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


def image(height: int, width: int, seed: int):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "height, width, scale, ratio, fallback",
    [
        (224, 224, SCALE, RATIO, None),
        (37, 91, SCALE, RATIO, None),
        (3, 200, (0.9, 1.0), RATIO, (0, 98, 3, 4)),  # never fits: the widest allowed, centred
        (200, 3, (0.9, 1.0), RATIO, (98, 0, 4, 3)),  # the tallest allowed, centred
        (50, 60, (0.95, 1.0), (0.5, 2.0), None),  # tight: some seeds fall back
    ],
)
def test_crop_boxes_are_torchvisions_draw_for_draw(
    torchvision, height, width, scale, ratio, fallback
):
    from torchvision.transforms import RandomResizedCrop

    img = torch.zeros(3, height, width)
    for seed in range(300):
        torch.manual_seed(seed)
        theirs = RandomResizedCrop.get_params(img, list(scale), list(ratio))
        ours = resized_crop_box(height, width, scale, ratio, torch.Generator().manual_seed(seed))
        assert ours == theirs, seed
        assert fallback is None or ours == fallback, seed


@pytest.mark.parametrize("size", [(24, 24), (16, 20)])
def test_the_whole_pipeline_is_torchvisions_pixel_for_pixel(torchvision, size):
    from torchvision import transforms as T

    tv = T.Compose(
        [
            T.RandomResizedCrop(
                size, scale=(0.3, 1.0), ratio=RATIO, interpolation=T.InterpolationMode.BILINEAR
            ),  # fmt: skip
            T.RandomHorizontalFlip(0.5),
            T.ColorJitter(brightness=0.4, contrast=0.3, saturation=0.2),
        ]
    )
    steps = (
        ("random_resized_crop", {"scale": (0.3, 1.0), "ratio": RATIO}),
        ("hflip", {"p": 0.5}),
        ("colour_jitter", {"brightness": 0.4, "contrast": 0.3, "saturation": 0.2}),
    )
    flipped = 0
    for seed in range(60):
        img = image(41, 57, seed)
        torch.manual_seed(seed)
        theirs = np.asarray(tv(img))
        ours = np.asarray(augment_image(img, steps, size, torch.Generator().manual_seed(seed)))
        assert ours.shape == (*size, 3) and np.array_equal(ours, theirs), seed
        torch.manual_seed(seed)
        T.RandomResizedCrop.get_params(img, [0.3, 1.0], list(RATIO))
        flipped += bool(torch.rand(1) < 0.5)
    assert 15 < flipped < 45  # both branches of the flip were compared


def test_eval_images_are_torchvisions_resize_then_centre_crop(torchvision, tmp_path):
    """Evaluation: resize to the stored size (data.resize), then the centre crop to the input
    (an even margin: cnnkit floors an odd one, torchvision rounds it half to even)."""
    from torchvision import transforms as T

    from cnnkit.train.config import NoLocation, parse_data
    from cnnkit.train.data import load_data

    for c in range(2):
        (tmp_path / f"c{c}").mkdir()
        for i in range(5):
            image(30 + i, 45 - i, 10 * c + i).save(tmp_path / f"c{c}" / f"{i}.png")
    raw = {"name": "folder", "path": str(tmp_path), "cache": "stream", "workers": 0}
    config = parse_data({**raw, "resize": [20, 22], "normalize": False, "val": 0, "test": 0.5},
                        NoLocation())  # fmt: skip
    bundle = load_data(config, (3, 16, 16))
    tv = T.Compose([T.Resize((20, 22)), T.CenterCrop(16), T.PILToTensor()])
    (x, _), = bundle.test.slices([0], len(bundle.test))  # fmt: skip
    from PIL import Image

    for got, file in zip(x, bundle.test.files):
        with Image.open(file) as img:
            want = tv(img.convert("RGB")).float() / 255
        assert torch.equal(got, want), file


def test_masks_follow_torchvisions_geometry_by_nearest_neighbour(torchvision):
    """An image/mask pair: the image is the pipeline's, the mask gets the same crop box and
    flip as torchvision's functional ops give it (NEAREST) and no colour change."""
    from PIL import Image
    from torchvision import transforms as T
    from torchvision.transforms import functional as TF

    from cnnkit.train.data.transforms import augment_pair

    steps = (
        ("random_resized_crop", {"scale": SCALE, "ratio": RATIO}),
        ("hflip", {"p": 0.5}),
        ("colour_jitter", {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4}),
    )
    size = (20, 24)
    tv = T.Compose(
        [T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4, 0.4)]
    )
    rng = np.random.default_rng(0)
    for seed in range(40):
        img = image(45, 61, seed)
        mask = Image.fromarray(rng.choice([0, 1, 2, 255], (45, 61)).astype(np.uint8), mode="L")
        ours = augment_pair(img, mask, steps, size, torch.Generator().manual_seed(seed))
        torch.manual_seed(seed)
        assert np.array_equal(np.asarray(ours[0]), np.asarray(tv(img))), seed
        torch.manual_seed(seed)
        box = T.RandomResizedCrop.get_params(img, list(SCALE), list(RATIO))
        want = TF.resized_crop(mask, *box, list(size), T.InterpolationMode.NEAREST)
        if torch.rand(1) < 0.5:
            want = TF.hflip(want)
        assert np.array_equal(np.asarray(ours[1]), np.asarray(want)), seed
