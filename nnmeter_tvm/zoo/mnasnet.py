"""MnasNet-A1 (Tan et al. 2019), the searched network of the paper's figure 7.

conv 3x3/2 (32) -> BN -> ReLU, SepConv (depthwise 3x3 -> BN -> ReLU -> conv 1x1 (16) -> BN),
six stages of MBConv blocks (inverted residuals with ReLU, some with squeeze-excite), conv 1x1
(1280) -> BN -> ReLU, global pool, fc.  Squeeze-excite is GlobalAveragePool -> conv 1x1 ->
ReLU -> conv 1x1 -> Sigmoid -> Mul, squeezing to a quarter of the *block input* width, as in
the released TensorFlow model (MnasNet uses a sigmoid gate; MobileNetV3 introduced the hard one).

Default input 224.  Variant: each stage's width scaled (one factor per stage, as the residual
adds need), each block's expanded width scaled, stem and head widths scaled, every depthwise
kernel (SepConv's included) drawn from {1, 3, 5, 7, 9}.
"""

from ._common import Family, classifier, inverted_residual, kernel, width

# (expansion, kernel, first stride, blocks, width, squeeze-excite)
STAGES = [(6, 3, 2, 2, 24, False), (3, 5, 2, 3, 40, True), (6, 3, 2, 4, 80, False),
          (6, 3, 1, 2, 112, True), (6, 5, 2, 3, 160, True), (6, 3, 1, 1, 320, False)]


def mnasnet(b, rng, x):
    with b.scope("stem"):
        x = b.conv_bn_act(x, width(rng, 32), 3, 2, tag="1")
        c = b.shape(x)[1]
        x = b.conv_bn_act(x, c, kernel(rng), groups=c, tag="2")
        x = b.conv_bn_act(x, width(rng, 16), 1, act=None, tag="3")
    for s, (e, _, stride, n, c, se) in enumerate(STAGES, 1):
        cout = width(rng, c)
        for i in range(1, n + 1):
            cin = b.shape(x)[1]
            squeeze = max(1, int(cin * 0.25)) if se else 0
            with b.scope(f"stage{s}.block{i}"):
                x = inverted_residual(b, x, width(rng, cin * e), cout, kernel(rng),
                                      stride if i == 1 else 1, "relu", squeeze, "sigmoid")
    with b.scope("head"):
        x = b.conv_bn_act(x, width(rng, 1280), 1)
    return classifier(b, x, 1000)


FAMILIES = (Family("mnasnet", mnasnet, 224),)
