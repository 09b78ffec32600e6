"""metabench: energy-aware benchmarking of few-shot learners.

Data flow (docs/architecture.md): suite file -> load_suite -> Suite -> grid of cells -> executor ->
harness.run_cell(cell, meter) -> ledger rows -> aggregate -> CSV, plots, HTML.

Python API (bench.api): `bench.run_suites(suites, **settings)` runs a grid as `metabench run`
does; `bench.load_run(run_dir)` loads a run folder into its tables (summary, results, trace,
learning curves, break-even). Imported on first use, so `import bench` stays light.
"""

__version__ = "0.1.0"
__all__ = ["Outcome", "RunTables", "__version__", "load_run", "run_suites"]
_API = {"Outcome", "RunTables", "load_run", "run_suites"}


def __getattr__(name: str):
    if name in _API:
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
