"""ResNet (He et al. 2016): stem, four stages of residual blocks, global pool, fc.

Default input 112 (not 224: the untuned TVM backend is slow).  Depth drawn from ResNet-18
([2, 2, 2, 2] basic blocks), ResNet-34 ([3, 4, 6, 3] basic) and ResNet-50 ([3, 4, 6, 3]
bottleneck blocks, stride on the 3x3 as in torchvision).  Every conv is followed by BN; the
shortcut is a 1x1 conv + BN when the shape changes.

Width: at full width ResNet-18/34/50 have 47/87/102 MB of weights, over the zoo's 40 MB, so
ResNet-34 and -50 start from 0.7x and 0.6x widths; then about half the draws of each depth
fit (the others are redrawn, which leans the accepted stage-4 widths narrow).

Variant: the stem's and each stage's output width scaled (one factor per stage, as the
residual adds need), and each block's inner width scaled on its own.  Kernel sizes are the
original ones (7x7 stem, 3x3 in blocks).
"""

from ._common import Family, classifier, width

# depth -> (block, blocks per stage, base width multiplier that keeps the weights near 40 MB)
DEPTHS = {18: ("basic", [2, 2, 2, 2], 1.0), 34: ("basic", [3, 4, 6, 3], 0.7),
          50: ("bottleneck", [3, 4, 6, 3], 0.6)}


def _block(b, rng, x, kind, cout, base, stride):
    """basic: conv1 3x3 -> conv2 3x3; bottleneck: conv1 1x1 -> conv2 3x3 -> conv3 1x1."""
    y = x
    if kind == "basic":
        y = b.conv_bn_act(y, width(rng, base), 3, stride, tag="1")
        y = b.conv_bn_act(y, cout, 3, act=None, tag="2")
    else:
        mid = width(rng, base)
        y = b.conv_bn_act(y, mid, 1, tag="1")
        y = b.conv_bn_act(y, mid, 3, stride, tag="2")
        y = b.conv_bn_act(y, cout, 1, act=None, tag="3")
    if stride != 1 or b.shape(x)[1] != cout:
        x = b.conv_bn_act(x, cout, 1, stride, act=None, tag="_down")
    return b.relu(b.add(x, y, name="add"), name="relu")


def resnet(b, rng, x):
    depth = int(rng.choice(list(DEPTHS)))
    kind, blocks, mult = DEPTHS[depth]
    expansion = 4 if kind == "bottleneck" else 1
    with b.scope("stem"):
        x = b.conv_bn_act(x, width(rng, 64), 7, 2)
        x = b.maxpool(x, 3, 2, pad=1, name="pool")
    for s, (n, base) in enumerate(zip(blocks, (64, 128, 256, 512)), 1):
        base = round(base * mult)
        cout = width(rng, base * expansion)
        for i in range(1, n + 1):
            with b.scope(f"stage{s}.block{i}"):
                x = _block(b, rng, x, kind, cout, base, 2 if i == 1 and s > 1 else 1)
    return classifier(b, x, 1000)


FAMILIES = (Family("resnet", resnet, 112),)
