"""SIM Watcher's benchmarks: ``python -m benchmarks [--quick] [--only NAME]`` (``make bench``).

One module per benchmark, each with a ``run(options) -> Result``:

- :mod:`benchmarks.planning`: a planning pass over 1,000,000 SIMs vs the bare SELECT;
- :mod:`benchmarks.config_sync`: loading and syncing a 10,000-SIM config file;
- :mod:`benchmarks.delivery`: the concurrent Deliverer vs a sequential Apprise loop.

Targets are reported as PASS or MISS; a miss never fails the run (see ``README.md``).
"""
