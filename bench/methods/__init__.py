"""Methods: one file per family, all on the interface of base.py."""

from bench.methods.base import METHODS, Method, Params, TaskSpec, register_builtin

register_builtin()

__all__ = ["METHODS", "Method", "Params", "TaskSpec"]
