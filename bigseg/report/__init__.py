"""Statistics and reports computed from a slab store's label mask, chunk by chunk."""
