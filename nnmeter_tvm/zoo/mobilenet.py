"""MobileNetV1 (Howard et al. 2017) and MobileNetV2 (Sandler et al. 2018).

mobilenetv1
    conv 3x3/2 (32) then 13 depthwise-separable layers (depthwise k x k -> BN -> ReLU, then
    pointwise 1x1 -> BN -> ReLU), global pool, fc.  Default input 224.  Variant: every
    pointwise width and the stem width scaled; each depthwise kernel drawn from {1, 3, 5, 7, 9}.
mobilenetv2
    conv 3x3/2 (32) -> 17 inverted residual blocks (1x1 expand -> BN -> ReLU6, depthwise k x k ->
    BN -> ReLU6, 1x1 project -> BN, Add when stride 1 and widths match) -> conv 1x1 (1280) ->
    global pool -> fc.  Default input 224.  Variant: each stage's output width scaled (one
    factor per stage, as the residual adds need), each block's expanded width scaled on its own
    (the first block keeps no expansion), stem and head widths scaled, each depthwise kernel
    drawn from {1, 3, 5, 7, 9}.
"""

from ._common import Family, classifier, inverted_residual, kernel, width

# (output width, stride) of the 13 separable layers
V1_LAYERS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
             (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]
# (expansion t, output width c, blocks n, first stride s), the paper's table 2
V2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenetv1(b, rng, x):
    with b.scope("stem"):
        x = b.conv_bn_act(x, width(rng, 32), 3, 2)
    for i, (c, s) in enumerate(V1_LAYERS, 1):
        with b.scope(f"block{i}"):
            cin = b.shape(x)[1]
            x = b.conv_bn_act(x, cin, kernel(rng), s, groups=cin, tag="1")
            x = b.conv_bn_act(x, width(rng, c), 1, tag="2")
    return classifier(b, x, 1000)


def mobilenetv2(b, rng, x):
    with b.scope("stem"):
        x = b.conv_bn_act(x, width(rng, 32), 3, 2, act="relu6")
    for s, (t, c, n, stride) in enumerate(V2_STAGES, 1):
        cout = width(rng, c)
        for i in range(1, n + 1):
            cin = b.shape(x)[1]
            hidden = cin if t == 1 else width(rng, cin * t)
            with b.scope(f"stage{s}.block{i}"):
                x = inverted_residual(b, x, hidden, cout, kernel(rng), stride if i == 1 else 1)
    with b.scope("head"):
        x = b.conv_bn_act(x, width(rng, 1280), 1, act="relu6")
    return classifier(b, x, 1000)


FAMILIES = (Family("mobilenetv1", mobilenetv1, 224),
            Family("mobilenetv2", mobilenetv2, 224))
