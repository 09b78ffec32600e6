"""Methods: one file per family, all on the interface of base.py; out-of-tree methods
register through the `metabench.methods` entry point group (bench.registry)."""

from bench.methods.base import METHODS, Method, Params, TaskSpec, register_builtin

register_builtin()
METHODS.load_entry_points("metabench.methods")

__all__ = ["METHODS", "Method", "Params", "TaskSpec"]
