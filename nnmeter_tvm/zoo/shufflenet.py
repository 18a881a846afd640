"""ShuffleNetV2 (Ma et al. 2018).

conv 3x3/2 (24) -> BN -> ReLU -> max pool 3x3/2, stages 2-4 of [4, 8, 4] units (widths 116,
232, 464 at 1.0x), conv 1x1 (1024) -> BN -> ReLU, global pool, fc.

A stride-1 unit Splits the channels in half, runs one half through branch2 (conv 1x1 -> BN ->
ReLU, depthwise k x k -> BN, conv 1x1 -> BN -> ReLU) and Concats it with the other half; a
stride-2 unit runs the whole input through branch1 (depthwise k x k/2 -> BN, conv 1x1 -> BN ->
ReLU) and branch2 (with a stride-2 depthwise) and Concats them.  Both end in a channel shuffle
with 2 groups: Reshape (1, 2, C/2, H, W) -> Transpose (0, 2, 1, 3, 4) -> Reshape (1, C, H, W).

Default input 224.  Variant: each stage's width scaled (rounded to even, one factor per stage as
the concats need), branch2's first 1x1 width scaled per unit, stem and head widths scaled,
each unit's depthwise kernel drawn from {1, 3, 5, 7, 9}.
"""

from ._common import Family, classifier, kernel, width


def _shuffle(b, x):
    n, c, h, w = b.shape(x)
    with b.scope("shuffle"):
        x = b.reshape(x, (n, 2, c // 2, h, w), name="reshape1")
        x = b.transpose(x, (0, 2, 1, 3, 4), name="transpose")
        return b.reshape(x, (n, c, h, w), name="reshape2")


def _unit(b, rng, x, cout, stride):
    half, k = cout // 2, kernel(rng)
    if stride == 1:
        keep, x = b.split(x, [b.shape(x)[1] - half, half], name="split")
    else:
        with b.scope("branch1"):
            keep = b.conv_bn_act(x, b.shape(x)[1], k, 2, groups=b.shape(x)[1], act=None,
                                 tag="1")
            keep = b.conv_bn_act(keep, half, 1, tag="2")
    with b.scope("branch2"):
        y = b.conv_bn_act(x, width(rng, half), 1, tag="1")
        y = b.conv_bn_act(y, b.shape(y)[1], k, stride, groups=b.shape(y)[1], act=None, tag="2")
        y = b.conv_bn_act(y, half, 1, tag="3")
    return _shuffle(b, b.concat([keep, y], name="concat"))


def shufflenetv2(b, rng, x):
    with b.scope("stem"):
        x = b.conv_bn_act(x, width(rng, 24), 3, 2)
        x = b.maxpool(x, 3, 2, pad=1, name="pool")
    for s, (n, c) in enumerate(zip((4, 8, 4), (116, 232, 464)), 2):
        cout = width(rng, c, multiple=2)
        for i in range(1, n + 1):
            with b.scope(f"stage{s}.unit{i}"):
                x = _unit(b, rng, x, cout, 2 if i == 1 else 1)
    with b.scope("head"):
        x = b.conv_bn_act(x, width(rng, 1024), 1)
    return classifier(b, x, 1000)


FAMILIES = (Family("shufflenetv2", shufflenetv2, 224),)
