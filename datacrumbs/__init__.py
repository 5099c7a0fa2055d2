"""datacrumbs: eBPF tracing of HPC jobs."""
