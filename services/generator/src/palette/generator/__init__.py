"""The generator: renders templates, calls Bedrock under budget leases, writes parts, exports."""
