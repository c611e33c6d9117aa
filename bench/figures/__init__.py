"""One module per measurement; each ``run(rig, plan)`` returns its table rows."""
