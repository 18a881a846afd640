"""ProxylessNAS, the mobile search space (Cai et al. 2019).

conv 3x3/2 (32) -> BN -> ReLU6, MBConv1 (depthwise 3x3 -> BN -> ReLU6 -> conv 1x1 (16) -> BN),
six stages of [4, 4, 4, 4, 4, 1] searched blocks (widths 24, 40, 80, 96, 192, 320; first
strides 2, 2, 2, 1, 2, 1), conv 1x1 (1280) -> BN -> ReLU6, global pool, fc.  A searched block
is an MBConv (inverted residual with ReLU6, expansion 3 or 6, Add when stride 1 and widths
match) or, except for a stage's first block, "zero": the block is left out (identity).

Default input 224.  Variant, as the search does: each block's op drawn (expansion from {3, 6},
kernel from {1, 3, 5, 7, 9} instead of the search's {3, 5, 7}, or zero with probability 1/7);
each stage's width scaled (one factor per stage), each block's expanded width scaled, stem
and head widths scaled.
"""

from ._common import Family, classifier, inverted_residual, kernel, width

# (width, blocks, first stride)
STAGES = [(24, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1)]


def proxylessnas(b, rng, x):
    with b.scope("stem"):
        x = b.conv_bn_act(x, width(rng, 32), 3, 2, act="relu6", tag="1")
        c = b.shape(x)[1]
        x = b.conv_bn_act(x, c, 3, groups=c, act="relu6", tag="2")
        x = b.conv_bn_act(x, width(rng, 16), 1, act=None, tag="3")
    for s, (c, n, stride) in enumerate(STAGES, 1):
        cout = width(rng, c)
        for i in range(1, n + 1):
            if i > 1 and rng.integers(7) == 0:
                continue  # "zero" op: the block is an identity
            cin = b.shape(x)[1]
            hidden = width(rng, cin * int(rng.choice((3, 6))))
            with b.scope(f"stage{s}.block{i}"):
                x = inverted_residual(b, x, hidden, cout, kernel(rng), stride if i == 1 else 1)
    with b.scope("head"):
        x = b.conv_bn_act(x, width(rng, 1280), 1, act="relu6")
    return classifier(b, x, 1000)


FAMILIES = (Family("proxylessnas", proxylessnas, 224),)
