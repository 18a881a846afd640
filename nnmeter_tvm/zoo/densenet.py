"""DenseNet (Huang et al. 2017), DenseNet-BC as in torchvision's DenseNet-121.

Stem conv 7x7/2 + BN + ReLU + max pool, four dense blocks with transitions (BN -> ReLU ->
conv 1x1 -> avg pool 2x2) between them, final BN -> ReLU -> global pool -> fc.  A dense layer
is BN -> ReLU -> conv 1x1 (bottleneck, 4 x growth) -> BN -> ReLU -> conv 3x3 (growth); its input
is the Concat of the block input and every earlier layer's output (as torchvision exports it),
and the block's output is the Concat of all of them.

Default input 112 and *reduced depth*: the layers per block are DenseNet-121's halved
([3, 6, 12, 8]) and then scaled like widths (1 to 22 per block), for about 30 layers instead of
58 (TVM compiles every dense layer's distinct input width as its own kernel).

Variant: stem width, each block's growth rate, each layer's bottleneck width and each
transition's width (the original halves the channels) scaled.  Kernels are the original 1x1
and 3x3.
"""

from ._common import Family, classifier, width


def _dense_block(b, rng, x, layers, growth):
    features = [x]
    for i in range(1, layers + 1):
        with b.scope(f"layer{i}"):
            y = features[0] if len(features) == 1 else b.concat(features, name="concat")
            y = b.relu(b.bn(y, name="bn1"), name="relu1")
            y = b.conv(y, width(rng, 4 * growth), 1, bias=False, name="conv1")
            y = b.relu(b.bn(y, name="bn2"), name="relu2")
            features.append(b.conv(y, growth, 3, bias=False, name="conv2"))
    return b.concat(features, name="concat")


def densenet(b, rng, x):
    with b.scope("stem"):
        x = b.conv_bn_act(x, width(rng, 64), 7, 2)
        x = b.maxpool(x, 3, 2, pad=1, name="pool")
    for s, n in enumerate((3, 6, 12, 8), 1):
        with b.scope(f"block{s}"):
            x = _dense_block(b, rng, x, width(rng, n), width(rng, 32))
        if s < 4:
            with b.scope(f"transition{s}"):
                x = b.relu(b.bn(x, name="bn"), name="relu")
                x = b.conv(x, width(rng, b.shape(x)[1] // 2), 1, bias=False, name="conv")
                if min(b.shape(x)[2:]) >= 2:
                    x = b.avgpool(x, 2, 2, name="pool")
    with b.scope("head"):
        x = b.relu(b.bn(x, name="bn"), name="relu")
    return classifier(b, x, 1000)


FAMILIES = (Family("densenet", densenet, 112),)
