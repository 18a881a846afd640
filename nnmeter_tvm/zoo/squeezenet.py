"""SqueezeNet (Iandola et al. 2016), versions 1.0 and 1.1 as in torchvision.

conv1 -> max pool -> fire modules with max pools between -> conv10 (1x1, 1000) -> ReLU ->
global pool, no fc (the original classifier).  A fire module is squeeze (conv 1x1 -> ReLU) then
two expands, conv 1x1 -> ReLU and conv 3x3 -> ReLU, joined by Concat.  No batch norm.
Pools are 3x3/2 with ceil mode.

Default input 224.  Variant: version drawn (1.0: conv1 96 7x7/2; 1.1: conv1 64 3x3/2 and
earlier pools); every conv's width scaled; each fire's second expand kernel drawn from
{1, 3, 5, 7, 9}.
"""

from ._common import Family, kernel, maxpool_if_fits, width

# (squeeze, expand1x1, expand3x3) of fire2 .. fire9
FIRES = [(16, 64, 64), (16, 64, 64), (32, 128, 128), (32, 128, 128), (48, 192, 192),
         (48, 192, 192), (64, 256, 256), (64, 256, 256)]
# version -> (conv1 width, conv1 kernel, fire numbers followed by a max pool)
VERSIONS = {"1.0": (96, 7, (4, 8)), "1.1": (64, 3, (3, 5))}


def _fire(b, rng, x, squeeze, e1, e3):
    x = b.conv_bn_act(x, width(rng, squeeze), 1, bn=False, tag="1")
    left = b.conv_bn_act(x, width(rng, e1), 1, bn=False, tag="2")
    right = b.conv_bn_act(x, width(rng, e3), kernel(rng), bn=False, tag="3")
    return b.concat([left, right], name="concat")


def squeezenet(b, rng, x):
    version = str(rng.choice(list(VERSIONS)))
    c1, k1, pools = VERSIONS[version]
    with b.scope("stem"):
        x = b.relu(b.conv(x, width(rng, c1), k1, 2, pad=0, name="conv"), name="relu")
        x = maxpool_if_fits(b, x, 3, 2, ceil_mode=True)
    for i, cfg in enumerate(FIRES, 2):
        with b.scope(f"fire{i}"):
            x = _fire(b, rng, x, *cfg)
        if i in pools:
            x = maxpool_if_fits(b, x, 3, 2, ceil_mode=True, name=f"pool{i}")
    with b.scope("classifier"):
        x = b.relu(b.conv(x, 1000, 1, name="conv10"), name="relu")
        return b.flatten(b.global_avgpool(x, name="gap"), name="flatten")


FAMILIES = (Family("squeezenet", squeezenet, 224),)
