"""Registered blocks. Each family module (core, dit, unet, mp, conditioning) holds plain-Python signatures
and shape rules; the torch implementations live in `diffc.blocks.nn` and load only when a model is built."""
