"""What the family generators share: the variant draws, the family record, common blocks.

Variants follow nn-Meter's dataset: every layer's (or stage's) output channels are the
original ones times a factor drawn in [0.2, 1.8], and free kernel sizes are drawn from
{1, 3, 5, 7, 9}.
"""

from dataclasses import dataclass
from typing import Callable

KERNELS = (1, 3, 5, 7, 9)
WIDTH_RANGE = (0.2, 1.8)
# Dense-equivalent MACs (``zoo.cost``) a variant may cost at its family's default input size:
# about 30-45 ms with onnxruntime on one x86 core (AVX-512, 25-40 dense GMAC/s typical).
MAX_COST = 1.2e9


@dataclass(frozen=True)
class Family:
    """One model family: how to build a variant, and its default size and cost budget.

    ``build(b, rng, x)`` adds the network to builder ``b`` after input tensor ``x`` and returns
    the output tensor; it draws every random choice from ``rng``.  ``max_cost`` is the budget
    in dense-equivalent MACs (``zoo.cost``) a variant must meet at ``input_size`` (drawn again
    otherwise, see ``zoo.generate``).
    """

    name: str
    build: Callable
    input_size: int
    max_cost: float = MAX_COST
    classes: int = 1000


def width(rng, channels, multiple=1):
    """``channels`` scaled by a factor drawn in WIDTH_RANGE, rounded to ``multiple`` (>= it)."""
    scaled = channels * rng.uniform(*WIDTH_RANGE) / multiple
    return max(multiple, int(round(scaled)) * multiple)


def kernel(rng, choices=KERNELS):
    return int(rng.choice(choices))


def fits(b, x, k):
    """Whether a k x k unpadded window fits the feature map (pools are skipped otherwise)."""
    return min(b.shape(x)[2:]) >= k


def maxpool_if_fits(b, x, k, stride, ceil_mode=False, name="pool"):
    """The network's unpadded max pool, left out when a small input makes the map smaller."""
    return b.maxpool(x, k, stride, ceil_mode=ceil_mode, name=name) if fits(b, x, k) else x


def classifier(b, x, classes, hidden=(), act="relu", pool="gap"):
    """``pool`` (gap, or flatten of the map) -> [fc -> act]* -> fc, in scope ``classifier``."""
    with b.scope("classifier"):
        if pool == "gap":
            x = b.global_avgpool(x, name="gap")
        x = b.flatten(x, name="flatten")
        for i, h in enumerate(hidden, 1):
            x = b.act(b.fc(x, h, name=f"fc{i}"), act, name=f"{act}{i}")
        return b.fc(x, classes, name=f"fc{len(hidden) + 1}")


def squeeze_excite(b, x, squeeze, gate="hardsigmoid"):
    """GlobalAveragePool -> conv1x1 -> relu -> conv1x1 -> gate -> Mul, in scope ``se``."""
    c = b.shape(x)[1]
    with b.scope("se"):
        s = b.global_avgpool(x, name="gap")
        s = b.relu(b.conv(s, squeeze, 1, name="conv1"), name="relu")
        s = b.act(b.conv(s, c, 1, name="conv2"), gate, name=gate)
        return b.mul(x, s, name="mul")


def inverted_residual(b, x, hidden, cout, k, stride, act="relu6", se=0, gate="hardsigmoid"):
    """MobileNetV2's block (also MnasNet's and ProxylessNAS's MBConv, MobileNetV3's bneck).

    conv1 (1x1 expand, left out when hidden == cin) -> conv2 (k x k depthwise) -> [se] ->
    conv3 (1x1 project, linear) -> add (when stride 1 and cin == cout).  ``se`` is the
    squeeze width, 0 for none.
    """
    cin = b.shape(x)[1]
    y = x
    if hidden != cin:
        y = b.conv_bn_act(y, hidden, 1, act=act, tag="1")
    y = b.conv_bn_act(y, hidden, k, stride, groups=hidden, act=act, tag="2")
    if se:
        y = squeeze_excite(b, y, se, gate)
    y = b.conv_bn_act(y, cout, 1, act=None, tag="3")
    return b.add(x, y, name="add") if stride == 1 and cin == cout else y
