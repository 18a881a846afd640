"""Kernels: the units a backend really executes; :func:`partition` splits a graph into them."""
from .kernel import Kernel
from .partition import Decision, kernel_type, partition, partition_with_decisions

__all__ = ["Kernel", "Decision", "kernel_type", "partition", "partition_with_decisions"]
