"""``nnmeter-tvm zoo``: write seeded ONNX variants of the model families to a folder."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser(
        "zoo", help="generate ONNX variants of the 12 CNN families and NAS-Bench-201",
        description="Write <family>_s<seed>_i<index>.onnx for index 0..count-1: random-weight "
                    "variants (scaled widths, drawn kernel sizes) of alexnet vgg densenet "
                    "resnet squeezenet googlenet mobilenetv1 mobilenetv2 mobilenetv3 "
                    "shufflenetv2 mnasnet proxylessnas nasbench201.")
    p.add_argument("--family", default="all", metavar="NAME",
                   help="a family name, or all (default)")
    p.add_argument("--count", type=int, default=5, metavar="N",
                   help="variants per family (default 5)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed (default 0)")
    p.add_argument("--input-size", type=int, default=None, metavar="N",
                   help="input height and width (default: each family's own, 32 to 224)")
    p.add_argument("-o", "--output", default="zoo_models", metavar="DIR",
                   help="output folder, created if missing (default zoo_models)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import zoo

    families = zoo.FAMILIES if args.family == "all" else (args.family,)
    for family in families:
        paths = zoo.write(family, args.count, args.seed, args.output, args.input_size)
        size = args.input_size or zoo.default_input_size(family)
        noun = "model" if len(paths) == 1 else "models"
        print(f"{family}: {len(paths)} {noun} ({size}x{size}, seed {args.seed}) -> {args.output}")
    return 0
