"""Azure Batch in the emulator: Microsoft.Batch on ARM (accounts, pools) and the Batch data plane (jobs, tasks,
nodes, files), with pools, nodes and tasks moved by the clock and tasks run as real local processes."""
