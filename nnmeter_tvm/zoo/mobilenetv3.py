"""MobileNetV3 Large and Small (Howard et al. 2019).

conv 3x3/2 (16) -> BN -> hard-swish, the "bneck" blocks of the paper's tables 1 and 2
(inverted residuals: 1x1 expand, depthwise k x k, optional squeeze-excite GlobalAveragePool ->
conv 1x1 -> ReLU -> conv 1x1 -> HardSigmoid -> Mul, 1x1 project, Add when stride 1 and widths
match; activation ReLU or hard-swish per block), conv 1x1 -> BN -> hard-swish, global pool,
fc -> hard-swish -> fc.

Default input 224.  Variant: size (Large or Small) drawn; each run of blocks with one output
width scaled together (the residual adds need it); each block's expanded width scaled (kept
equal to the input when the original has no expansion); stem, head and fc widths scaled; each
depthwise kernel drawn from {1, 3, 5, 7, 9}.  Squeeze width is expanded / 4 rounded to 8.
"""

from ._common import Family, classifier, inverted_residual, kernel, width

# (kernel, expanded, out, se, activation, stride)
LARGE = [(3, 16, 16, 0, "relu", 1), (3, 64, 24, 0, "relu", 2), (3, 72, 24, 0, "relu", 1),
         (5, 72, 40, 1, "relu", 2), (5, 120, 40, 1, "relu", 1), (5, 120, 40, 1, "relu", 1),
         (3, 240, 80, 0, "hardswish", 2), (3, 200, 80, 0, "hardswish", 1),
         (3, 184, 80, 0, "hardswish", 1), (3, 184, 80, 0, "hardswish", 1),
         (3, 480, 112, 1, "hardswish", 1), (3, 672, 112, 1, "hardswish", 1),
         (5, 672, 160, 1, "hardswish", 2), (5, 960, 160, 1, "hardswish", 1),
         (5, 960, 160, 1, "hardswish", 1)]
SMALL = [(3, 16, 16, 1, "relu", 2), (3, 72, 24, 0, "relu", 2), (3, 88, 24, 0, "relu", 1),
         (5, 96, 40, 1, "hardswish", 2), (5, 240, 40, 1, "hardswish", 1),
         (5, 240, 40, 1, "hardswish", 1), (5, 120, 48, 1, "hardswish", 1),
         (5, 144, 48, 1, "hardswish", 1), (5, 288, 96, 1, "hardswish", 2),
         (5, 576, 96, 1, "hardswish", 1), (5, 576, 96, 1, "hardswish", 1)]
# size -> (blocks, head conv width, hidden fc width)
SIZES = {"large": (LARGE, 960, 1280), "small": (SMALL, 576, 1024)}


def _divisible(v, d=8):
    return max(d, int(v + d / 2) // d * d)


def mobilenetv3(b, rng, x):
    blocks, head, fc = SIZES[str(rng.choice(list(SIZES)))]
    with b.scope("stem"):
        x = b.conv_bn_act(x, width(rng, 16), 3, 2, act="hardswish")
    widths, prev_in = {}, 16
    for i, (_, exp, out, se, act, stride) in enumerate(blocks, 1):
        cout = widths.setdefault(out, width(rng, out))
        cin = b.shape(x)[1]
        hidden = cin if exp == prev_in else width(rng, exp)
        prev_in = out
        with b.scope(f"block{i}"):
            x = inverted_residual(b, x, hidden, cout, kernel(rng), stride, act,
                                  _divisible(hidden / 4) if se else 0, "hardsigmoid")
    with b.scope("head"):
        x = b.conv_bn_act(x, width(rng, head), 1, act="hardswish")
    return classifier(b, x, 1000, [width(rng, fc)], act="hardswish")


FAMILIES = (Family("mobilenetv3", mobilenetv3, 224),)
