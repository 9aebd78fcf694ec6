"""Training from slab stores: random crops read straight from zarr, checkpoints, exact resume."""
