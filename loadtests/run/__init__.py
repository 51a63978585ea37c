"""``loadtest run``: the experiment runner (fleet and replica processes, load generator, reports, plots)."""
