"""The bundled demo model is the zoo model it says it is, and ships with the package."""
from importlib import resources

import onnx

from nnmeter_tvm.zoo import generate


def test_bundled_example_is_the_documented_zoo_variant():
    path = resources.files("nnmeter_tvm.zoo") / "examples" / "mobilenetv2.onnx"
    shipped = onnx.load(str(path))
    assert shipped.SerializeToString() == generate("mobilenetv2", 4, 1).SerializeToString()
