"""AlexNet (Krizhevsky et al. 2012) and VGG (Simonyan & Zisserman 2015): plain conv stacks.

No batch norm (the originals have none); convs have biases and ReLU; classifier is flatten ->
fc -> relu -> fc -> relu -> fc.

alexnet
    Default input 112 (not 224: the untuned TVM backend is slow).  conv1 (64, stride 4) ->
    pool -> conv2 (192) -> pool -> conv3..5 (384, 256, 256) -> pool -> classifier with two
    hidden fc of 1024 (the original's 4096 would need ~100 MB of weights).  Variant: every
    conv's and hidden fc's width scaled; conv1's kernel drawn from {7, 9, 11} (a kernel below
    the stride would skip pixels), conv2..5's from {1, 3, 5, 7, 9}; all convs padded k // 2.
vgg
    Default input 64, 5 stages of convs (64, 128, 256, 512, 512), each followed by a 2x2 max
    pool; depth drawn from VGG-11/13/16/19 ([1,1,2,2,2] .. [2,2,4,4,4] convs per stage), at
    0.9x/0.9x/0.75x/0.65x width so that about half the draws of each depth fit in 40 MB (VGG-16
    at full width has 59 MB of conv weights); classifier with two hidden fc of 1024 (not 4096,
    for size).  Variant: every conv's and hidden fc's width scaled; one kernel size per stage
    drawn from {1, 3, 5, 7, 9}, from {1, 3} in the two 512-wide stages (one 5x5 512-to-512
    conv alone has 26 MB of weights).

Budget: draws over the cost budget or 40 MB are redrawn (``zoo.generate``): about half of
AlexNet's and of VGG's, so 7x7 and 9x9 kernels survive more often in the narrow early stages.
VGG's budget is 2 GMACs, not 1.2: its wide convs run at ~45 GMAC/s in onnxruntime (about
45 ms at the budget).
"""

from ._common import KERNELS, Family, classifier, kernel, maxpool_if_fits, width


def alexnet(b, rng, x):
    layers = [(64, kernel(rng, (7, 9, 11)), 4, True), (192, kernel(rng), 1, True),
              (384, kernel(rng), 1, False), (256, kernel(rng), 1, False),
              (256, kernel(rng), 1, True)]
    with b.scope("features"):
        for i, (c, k, s, pool) in enumerate(layers, 1):
            x = b.conv_bn_act(x, width(rng, c), k, s, bn=False, tag=str(i))
            if pool:
                x = maxpool_if_fits(b, x, 3, 2, name=f"pool{i}")
    hidden = [width(rng, 1024), width(rng, 1024)]
    return classifier(b, x, 1000, hidden, pool="flatten")


# depth -> (convs per stage, base width multiplier that keeps the weights near 40 MB)
VGG_DEPTHS = {11: ([1, 1, 2, 2, 2], 0.9), 13: ([2, 2, 2, 2, 2], 0.9),
              16: ([2, 2, 3, 3, 3], 0.75), 19: ([2, 2, 4, 4, 4], 0.65)}


def vgg(b, rng, x):
    convs, mult = VGG_DEPTHS[int(rng.choice(list(VGG_DEPTHS)))]
    for s, (n, c) in enumerate(zip(convs, (64, 128, 256, 512, 512)), 1):
        k = kernel(rng, KERNELS if c < 512 else (1, 3))
        with b.scope(f"stage{s}"):
            for i in range(1, n + 1):
                x = b.conv_bn_act(x, width(rng, round(c * mult)), k, bn=False, tag=str(i))
            x = maxpool_if_fits(b, x, 2, 2)
    hidden = [width(rng, 1024), width(rng, 1024)]
    return classifier(b, x, 1000, hidden, pool="flatten")


FAMILIES = (Family("alexnet", alexnet, 112), Family("vgg", vgg, 64, 2.0e9))
