"""Programs the harness runs as separate processes; each prints one JSON object."""
