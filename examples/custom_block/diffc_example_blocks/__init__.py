"""An example diffc plug-in package: blocks.py registers the block (plain Python, no torch), nn.py builds it."""
