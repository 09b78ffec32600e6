"""metabench: energy-aware benchmarking of few-shot learners.

Data flow (docs/architecture.md): suite file -> load_suite -> Suite -> grid of cells -> executor ->
harness.run_cell(cell, meter) -> ledger rows -> aggregate -> CSV, plots, HTML.
"""

__version__ = "0.1.0"
