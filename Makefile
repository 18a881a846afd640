# Quick start: `make demo` and `make test`.  Both create .venv when it is missing and install
# the package into it (non-editable, C++ extension compiled), so they work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.nnmeter-installed
SOURCES := $(shell find nnmeter_tvm passes rules cpp_ext -type f -not -name '*.pyc' -not -name '*.so' 2>/dev/null) setup.py pyproject.toml
EXAMPLE := nnmeter_tvm/zoo/examples/mobilenetv2.onnx

.PHONY: demo test install dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python $(SOURCES)
	$(BIN)/python -m pip install -q ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Editable install for development (passes/ and rules/ are mapped by setup.py's package_dir).
dev: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test]"

demo: install
	$(BIN)/nnmeter-tvm predict $(EXAMPLE) --measure

# Tests run against the installed package: pytest from .venv/bin, so the checkout is not on sys.path.
test: install
	$(BIN)/pytest -q

clean:
	rm -rf build dist *.egg-info $(VENV)
