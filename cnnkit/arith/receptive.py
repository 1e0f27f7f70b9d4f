"""Receptive-field algebra: size, effective stride and effective padding, per spatial axis.

Follows Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks"
(Distill, 2019). Going forward through a layer with kernel k (dilation folded in:
k' = d*(k-1) + 1), stride s and padding p before:

    r_l = r_{l-1} + (k' - 1) * S_{l-1}      (field size)
    S_l = S_{l-1} * s                       (effective stride, the "jump")
    P_l = P_{l-1} + p * S_{l-1}             (effective padding)

which is the paper's r_{l-1} = s_l * r_l + (k_l - s_l) unrolled. Output unit i of layer l sees
input positions [i*S_l - P_l, i*S_l - P_l + r_l - 1]; its centre is i*S_l - P_l + (r_l - 1)/2.
Where paths merge (add, concat), every path's field is kept: the graph is "aligned" when all
paths agree on stride and centre, and the largest and smallest fields are reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cnnkit.arith.sizes import span


@dataclass(frozen=True, order=True)
class Field:
    """The receptive field of one unit along every spatial axis (tuples, one value per axis)."""

    size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]

    @classmethod
    def identity(cls, dims: int) -> Field:
        """The input itself: each unit sees one position."""
        return cls((1,) * dims, (1,) * dims, (0,) * dims)

    @property
    def dims(self) -> int:
        return len(self.size)

    def centre(self, axis: int, index: int = 0) -> float:
        """Input coordinate of the centre of unit ``index``'s field along ``axis``."""
        return index * self.stride[axis] - self.padding[axis] + (self.size[axis] - 1) / 2

    def through(
        self,
        kernel: tuple[int, ...],
        stride: tuple[int, ...],
        pad_before: tuple[int, ...],
        dilation: tuple[int, ...],
    ) -> Field:
        """The field after one more sliding-window layer (conv or pool)."""
        return Field(
            tuple(
                r + (span(k, d) - 1) * j
                for r, k, d, j in zip(self.size, kernel, dilation, self.stride)
            ),
            tuple(j * s for j, s in zip(self.stride, stride)),
            tuple(p0 + p * j for p0, p, j in zip(self.padding, pad_before, self.stride)),
        )


@dataclass(frozen=True)
class Fields:
    """All distinct fields of a node over the paths that reach it from the input."""

    paths: frozenset[Field]

    @classmethod
    def of(cls, fields: Iterable[Field]) -> Fields:
        return cls(frozenset(fields))

    @property
    def dims(self) -> int:
        return next(iter(self.paths)).dims

    @property
    def largest(self) -> tuple[int, ...]:
        return tuple(max(f.size[a] for f in self.paths) for a in range(self.dims))

    @property
    def smallest(self) -> tuple[int, ...]:
        return tuple(min(f.size[a] for f in self.paths) for a in range(self.dims))

    @property
    def stride(self) -> tuple[int, ...]:
        """The effective stride; when paths disagree, the largest (the graph is not aligned)."""
        return tuple(max(f.stride[a] for f in self.paths) for a in range(self.dims))

    @property
    def padding(self) -> tuple[int, ...]:
        """Effective padding of the largest field (the one that bounds what a unit sees)."""
        return self.widest.padding

    @property
    def widest(self) -> Field:
        return max(self.paths, key=lambda f: (f.size, f.padding))

    @property
    def aligned(self) -> bool:
        """True when every path has the same effective stride and field centre on every axis."""
        first = next(iter(self.paths))
        return all(
            f.stride == first.stride
            and all(f.centre(a) == first.centre(a) for a in range(first.dims))
            for f in self.paths
        )

    def through(
        self,
        kernel: tuple[int, ...],
        stride: tuple[int, ...],
        pad_before: tuple[int, ...],
        dilation: tuple[int, ...],
    ) -> Fields:
        return Fields.of(f.through(kernel, stride, pad_before, dilation) for f in self.paths)

    @staticmethod
    def merge(inputs: Iterable[Fields]) -> Fields:
        """Fields of a node fed by several paths (add, concat): the union of their fields."""
        return Fields.of(f for fields in inputs for f in fields.paths)


def chain(
    layers: Iterable[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]],
    dims: int,
) -> list[Field]:
    """Fields after each ``(kernel, stride, pad_before, dilation)`` layer of a plain chain."""
    field = Field.identity(dims)
    out = []
    for kernel, stride, pad, dilation in layers:
        field = field.through(kernel, stride, pad, dilation)
        out.append(field)
    return out
