"""GoogLeNet / Inception v1 (Szegedy et al. 2015), with batch norm as in torchvision.

Stem conv 7x7/2 -> pool -> conv 1x1 -> conv 3x3 -> pool, inception 3a-3b -> pool -> 4a-4e ->
pool -> 5a-5b, global pool, fc.  Every conv is conv (no bias) -> BN -> ReLU.  An inception
module has four branches joined by Concat: 1x1; 1x1 -> 3x3; 1x1 -> 5x5 (the paper's; torchvision
has 3x3 there); max pool 3x3/1 -> 1x1.  Pools are 3x3/2 with ceil mode (2x2 before 5a).
No auxiliary classifiers (they are dropped at inference).

Default input 112 (not 224: the untuned TVM backend is slow), full depth.  Variant: every
conv's width scaled; each module's third-branch kernel drawn from {1, 3, 5, 7, 9}.
"""

from ._common import Family, classifier, kernel, maxpool_if_fits, width

# name -> (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj); None marks a stage pool
MODULES = [("3a", (64, 96, 128, 16, 32, 32)), ("3b", (128, 128, 192, 32, 96, 64)), None,
           ("4a", (192, 96, 208, 16, 48, 64)), ("4b", (160, 112, 224, 24, 64, 64)),
           ("4c", (128, 128, 256, 24, 64, 64)), ("4d", (112, 144, 288, 32, 64, 64)),
           ("4e", (256, 160, 320, 32, 128, 128)), None,
           ("5a", (256, 160, 320, 32, 128, 128)), ("5b", (384, 192, 384, 48, 128, 128))]


def _inception(b, rng, x, c1, r3, c3, r5, c5, pp):
    k = kernel(rng)
    with b.scope("branch1"):
        y1 = b.conv_bn_act(x, width(rng, c1), 1)
    with b.scope("branch2"):
        y2 = b.conv_bn_act(b.conv_bn_act(x, width(rng, r3), 1, tag="1"), width(rng, c3), 3,
                           tag="2")
    with b.scope("branch3"):
        y3 = b.conv_bn_act(b.conv_bn_act(x, width(rng, r5), 1, tag="1"), width(rng, c5), k,
                           tag="2")
    with b.scope("branch4"):
        y4 = b.conv_bn_act(b.maxpool(x, 3, 1, pad=1, ceil_mode=True, name="pool"),
                           width(rng, pp), 1)
    return b.concat([y1, y2, y3, y4], name="concat")


def googlenet(b, rng, x):
    with b.scope("stem"):
        x = b.conv_bn_act(x, width(rng, 64), 7, 2, tag="1")
        x = maxpool_if_fits(b, x, 3, 2, ceil_mode=True, name="pool1")
        x = b.conv_bn_act(x, width(rng, 64), 1, tag="2")
        x = b.conv_bn_act(x, width(rng, 192), 3, tag="3")
        x = maxpool_if_fits(b, x, 3, 2, ceil_mode=True, name="pool2")
    pools = iter([(3, 2, "pool3"), (2, 2, "pool4")])
    for entry in MODULES:
        if entry is None:
            k, s, name = next(pools)
            x = maxpool_if_fits(b, x, k, s, ceil_mode=True, name=name)
            continue
        with b.scope(f"inception{entry[0]}"):
            x = _inception(b, rng, x, *entry[1])
    return classifier(b, x, 1000)


FAMILIES = (Family("googlenet", googlenet, 112),)
