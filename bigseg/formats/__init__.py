"""Results in other people's formats: OME-Zarr (NGFF 0.5) for napari, vizarr and other NGFF viewers
(``ome_zarr``), tiled pyramidal TIFF for GIS, QuPath and ImageJ (``tiff``). Both stream chunk by chunk."""
