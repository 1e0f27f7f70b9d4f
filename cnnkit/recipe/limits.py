"""The bounds every recipe is held to, in one place (docs/recipes.md states them).

Each is far beyond any real network (DenseNet-264 has about 1,000 layers and a 30 kB recipe)
and close enough that a hostile or mistyped recipe (a YAML alias bomb, ``repeat: {times: 1e9}``,
a power tower in ``${...}``) is refused in milliseconds instead of hanging or taking gigabytes.
"""

from __future__ import annotations

MAX_FILE_BYTES = 1 << 20  # a recipe file (or a checkpoint's saved recipe), in bytes
MAX_YAML_NODES = 200_000  # YAML values once aliases are expanded
MAX_NESTING = 64  # levels of nested YAML lists and mappings
MAX_INT_DIGITS = 64  # digits of an integer written in YAML
MAX_LAYERS = 100_000  # primitive layers after repeat, dense, blocks and model.depth
MAX_EDGES = 1_000_000  # layer inputs in all (DenseNet-264 has about 3,000)
MAX_SCALE = 1000.0  # model.depth and model.width
MAX_NAME_CHARS = 200  # a layer name, and a repeat's names template
MAX_CALL_DEPTH = 32  # blocks calling blocks
MAX_EXPR_CHARS = 200  # the text inside one ${...}
MAX_EXPR_BITS = 512  # an integer any step of a ${...} expression may reach
MAX_TENSOR_ELEMENTS = 1 << 34  # one layer's output for one sample, or one layer's parameters
