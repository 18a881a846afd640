"""Two BERT-like post-norm encoders of shapes none of ``beyond_zoo.POST_NORM``'s four has, to
profile with ``nnmeter-tvm build --extend ort-cpu --models``.  Usage: python make_models.py DIR"""
import sys
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from beyond_zoo import POST_NORM, encoder  # noqa: E402

SHAPES = ((32, 128, 4, 1), (64, 192, 6, 1))  # tokens, width, heads, blocks
assert not set(SHAPES) & set(POST_NORM)
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
for shape in SHAPES:
    model = encoder(*shape, seed=1, post_norm=True)
    onnx.save(model, str(out / f"{model.graph.name}.onnx"))
    print(out / f"{model.graph.name}.onnx")
