"""``gnnkit bench``: datasets × methods × seeds, one ``gnnkit train`` process per run.

- :mod:`gnnkit.bench.grid`: the TOML config, the grid of runs and the state kept under the output
  folder (a rerun resumes; a changed configuration is refused);
- :mod:`gnnkit.bench.runner`: runs the grid's ``gnnkit train`` processes (``--jobs`` at a time), records
  each run's figures, peak memory and curve;
- :mod:`gnnkit.bench.report`: ``results.csv``, ``summary.md`` and the plots (skipped with a note when
  matplotlib is not installed).
"""
from .grid import (DEFAULT_CONFIG, Dataset, Grid, Run, build_grid, check_state, load_config, load_record,
                   parse_dataset, split_specs)
from .report import write_outputs
from .runner import run_grid

__all__ = ["DEFAULT_CONFIG", "Dataset", "Grid", "Run", "build_grid", "check_state", "load_config", "load_record",
           "parse_dataset", "split_specs", "write_outputs", "run_grid"]
