"""Image files that are decoded per batch instead of held in memory (``data.cache: stream``).

The file list is split exactly as the in-memory path splits its tensors (same seeded limit
and split, on an index per file), so ``memory`` and ``stream`` train on the same images in
the same order. Each item is decoded with PIL in a ``DataLoader`` worker the way
``sources._decode`` decodes it (8-bit, resized bilinearly to the stored size) and stays
uint8 until the device, where it becomes float, is normalised and (eval) centre-cropped with
the same arithmetic as ``pipeline.load_data``. The batches are the loop's own order
(``loop._epoch_order``), handed to the loader as a batch sampler: resume and DDP shards are
what they are in memory, whatever the worker count.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.errors import DataError
from cnnkit.train.config import DataConfig
from cnnkit.train.data import sources
from cnnkit.train.data.sources import Want

MiB = 2**20
STATS_BATCH = 256  # images per batch of the one pass that computes mean and std


def default_workers() -> int:
    """``data.workers: null``: min(4, the CPUs this process may use)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return min(4, cpus)


Steps = tuple[tuple[str, dict[str, Any]], ...]  # data.sample_augment as (kind, args)


def decode(file: str, want: Want, steps: Steps = (), g: torch.Generator | None = None):
    """One image as uint8 ``[C, H, W]`` at the stored size: ``sources._decode``'s 8-bit path
    (convert to L or RGB, PIL bilinear resize), so its pixels / 255 are the in-memory ones;
    with ``steps``, augmented first at its own size (``transforms.augment_image``)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked up front
            with Image.open(file) as image:
                image = image.convert("L" if want.channels == 1 else "RGB")
                if steps:
                    from cnnkit.train.data.transforms import augment_image

                    image = augment_image(image, steps, want.size, g)
                size = (want.size[1], want.size[0])
                array = np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise DataError(f"cannot read image: {sources._one_line(err)}", where=file) from None
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(array.transpose(2, 0, 1).copy())  # writable, contiguous


class ImageFiles(torch.utils.data.Dataset):
    """Lazy images: item ``i`` is (uint8 ``[C, H, W]``, target ``i``), decoded on demand; with
    ``masks`` (task segment) the target is mask ``i`` read as ``segment._read_mask`` reads it.
    A file that cannot be decoded comes back as its one-line message (see ``collate``)."""

    def __init__(
        self,
        files: tuple[str, ...],
        y: torch.Tensor,
        want: Want,
        masks: tuple[str | None, ...] = (),
        config: DataConfig | None = None,
        steps: Steps = (),
    ) -> None:
        self.files, self.y, self.want, self.masks, self.config = files, y, want, masks, config
        self.steps = steps

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor] | str:
        """Item ``i``, or ``(i, epoch)``: augmented by ``steps`` with the draws of image i in
        that epoch (``transforms.item_seed``), the same in any worker and after a resume."""
        i, epoch = key if isinstance(key, tuple) else (key, None)
        g = None
        if epoch is not None and self.steps:
            from cnnkit.train.data.transforms import item_seed

            assert self.config is not None
            g = torch.Generator().manual_seed(item_seed(self.config.seed, epoch, i))
        try:
            if g is not None and self.masks:
                return self._pair(i, g)
            if g is not None and self.config is not None and self.config.target_kind == "points":
                from cnnkit.train.data.point_files import decode_points

                return decode_points(self.files[i], self.want, self.y[i], self.steps, g)
            return decode(self.files[i], self.want, self.steps if g else (), g), self._target(i)
        except DataError as err:
            return str(err)

    def _pair(self, i: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Image and mask augmented together (``transforms.augment_pair``); the mask was
        checked before training, so here it only has its ignored pixels marked."""
        from PIL import Image

        from cnnkit.train.data.segment import IGNORE
        from cnnkit.train.data.transforms import augment_pair

        assert self.config is not None
        file, mask = self.files[i], self.masks[i]
        try:
            with Image.open(file) as image, Image.open(str(mask)) as m:
                image = image.convert("L" if self.want.channels == 1 else "RGB")
                image, m = augment_pair(image, m, self.steps, self.want.size, g)
                pixels, values = np.asarray(image, dtype=np.uint8), np.asarray(m).astype(np.int64)
        except (OSError, ValueError, SyntaxError, EOFError) as err:
            raise DataError(f"cannot read image: {sources._one_line(err)}", where=file) from None
        values[values == self.config.ignore_index] = IGNORE
        pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
        return torch.from_numpy(pixels.transpose(2, 0, 1).copy()), torch.from_numpy(values)

    def _target(self, i: int) -> torch.Tensor:
        if not self.masks:
            return self.y[i]
        from cnnkit.train.data.segment import _read_mask

        mask = self.masks[i]
        assert self.config is not None
        return _read_mask(Path(self.files[i]), mask and Path(mask), self.config, self.want)


def collate(items: list[Any]) -> tuple[torch.Tensor, torch.Tensor] | str:
    """Stack a batch, or pass on the first bad file's message: raised in the main process
    as one ``DataError`` line, not a worker's traceback."""
    for item in items:
        if isinstance(item, str):
            return item
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


class Batches:
    """A batch sampler whose batches are set before each pass: the loop's epoch order, or
    evaluation's slices. Persistent workers keep running while the order changes."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    def __iter__(self) -> Iterator[list[Any]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


@dataclass
class Normalise:
    """What happens on the device: uint8 -> float / 255, minus mean, over std, centre crop."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop: tuple[int, int] | None = None  # eval (and train without crops): the recipe's H x W
    points: bool = False  # data.target_kind points: the targets follow the crop
    _on: dict[Any, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.device not in self._on:  # uploaded once per device, not once per batch
            self._on[x.device] = (
                torch.tensor(self.mean, device=x.device)[None, :, None, None],
                torch.tensor(self.std, device=x.device)[None, :, None, None],
            )
        mean, std = self._on[x.device]
        x = (x.float() / 255.0 - mean) / std
        if self.crop is not None and tuple(x.shape[2:]) != self.crop:
            from cnnkit.train.data.pipeline import _centre_crop

            before = (x.shape[2], x.shape[3])
            x = _centre_crop(x, self.crop)
            if y.dim() == 3:  # segmentation masks follow their images
                y = _centre_crop(y[:, None], self.crop)[:, 0]
            elif self.points:
                from cnnkit.train.data.points import centre_cropped

                y = centre_cropped(y, before, self.crop)
        return x.float().contiguous(), y


@dataclass
class StreamSplit:
    """A split of image files consumed like ``pipeline.Split``: ``len``, ``y`` (the targets,
    small), ``batches`` for training, ``slices`` for evaluation, ``head`` for shape checks."""

    files: tuple[str, ...]
    y: torch.Tensor  # labels or targets; segment: each mask's largest index (masks: per batch)
    want: Want
    normalise: Normalise
    workers: int = 0
    masks: tuple[str | None, ...] = ()  # segment: the mask file of each image
    config: DataConfig | None = None  # segment: classes, ignore_index; sample_augment: seed
    steps: Steps = ()  # train: data.sample_augment, applied per image in the workers
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    channels_last: bool = False
    _loader: Any = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.files)

    def to(self, device: torch.device | str) -> StreamSplit:
        """The split for ``device``: nothing moves now, each batch is copied when it is made.
        The loader (and its running workers) passes to the new split unless pinned memory
        changes with the device; this one lets go of it, so no idle workers linger."""
        device = torch.device(device)
        loader = self._loader if device.type == self.device.type else None
        self._loader = None
        return replace(self, device=device, _loader=loader)

    def nhwc(self) -> StreamSplit:
        loader, self._loader = self._loader, None
        return replace(self, channels_last=True, _loader=loader)

    def batches(
        self, order: torch.Tensor, size: int, epoch: int | None = None
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        index: list[Any] = order.tolist()
        if self.steps and epoch is not None:  # each image's augmentation draws for this epoch
            index = [(i, epoch) for i in index]
        return self._run([index[s : s + size] for s in range(0, len(index), size)])

    def slices(self, starts: Iterable[int], size: int) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(self)
        return self._run([list(range(s, min(s + size, n))) for s in starts])

    def head(self, n: int) -> torch.Tensor:
        item = collate([self.dataset()[i] for i in range(min(n, len(self)))])
        if isinstance(item, str):
            raise DataError(item)
        return self.normalise(*item)[0]

    def dataset(self) -> ImageFiles:
        return ImageFiles(self.files, self.y, self.want, self.masks, self.config, self.steps)

    def loader(self) -> torch.utils.data.DataLoader:
        """One loader per split, made on first use; its workers persist across epochs."""
        if self._loader is None:
            self._loader = torch.utils.data.DataLoader(
                self.dataset(),
                batch_sampler=Batches(),
                num_workers=self.workers,
                collate_fn=collate,
                pin_memory=self.device.type == "cuda",
                persistent_workers=self.workers > 0,
                # Its own generator: a loader's base seed drawn from the global RNG would move
                # the dropout draws that loop._epoch_order seeds (memory and stream would part).
                generator=torch.Generator().manual_seed(0),
            )
        return self._loader

    def _run(self, batches: list[list[Any]]) -> Iterator[tuple[torch.Tensor, ...]]:
        if not batches:
            return
        loader = self.loader()
        loader.batch_sampler.batches = batches
        for item in loader:
            if isinstance(item, str):
                raise DataError(item)
            x, y = item
            x = x.to(self.device, non_blocking=True)
            x, y = self.normalise(x, y.to(self.device, non_blocking=True))
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y
