"""The benchmark suite's logic: configurations, inventories, host probes, runner, report.

The pytest-benchmark module in benchmarks/ only orders and times the cases;
`nspawn-fast bench` runs it and then writes benchmarks/RESULTS.md and the chart.
"""
