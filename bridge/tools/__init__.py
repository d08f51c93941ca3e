"""Command-line tools beside the service: a simulated satellite, the demo, regenerating data."""
