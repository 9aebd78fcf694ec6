"""The slab store: one zarr v3 group per slab holding everything about it. This docstring is the layout; other
modules ask this package for names and paths instead of spelling them. Its rooms: :mod:`~bigseg.store.layout`
(names, opening, attributes, levels), :mod:`~bigseg.store.damage` (reads that name a broken chunk),
:mod:`~bigseg.store.locks` (the one writer's lock and its waiter), :mod:`~bigseg.store.staging` (outputs complete
only when complete); everything is importable from ``bigseg.store``.

Layout (all arrays carry ``dimension_names`` so that ``xarray.open_zarr`` gives named dimensions)::

    slab.zarr/
      image          (y, x, band) uint8      the ingested picture, RGB
      truth          (y, x) uint8            ground-truth class ids (optional; 255 = unlabelled)
      labels         (y, x) uint8            predicted class ids (written by ``infer``; attrs: stats, confidence,
                                             the run record, the model's provenance)
      confidence     (conf_y, conf_x) uint8  mean top class probability per f x f block, x 255 (``infer``)
      probabilities  (class, y, x) uint8     class probabilities x 255 (``infer --probabilities``)
      annotations    (y, x) uint8            strokes painted in the viewer (255 = none; sparse: unpainted chunks
                                             are not stored) (``serve --annotate``, ``import annotations``)
      preview/xF                             image downsampled by F = 4, 8, ... (mean), for quicklooks and tiles
      preview-labels/xF, preview-truth/xF,   the masks' pyramids (most frequent class), same factors
      preview-annotations/xF                 (:func:`level_factors`; built by :mod:`bigseg.pyramid`)
      .bigseg/                               bigseg's own files, invisible to zarr and xarray:
        staged/                              a running ``infer``'s outputs (:data:`STAGED`), swapped in when done
        labels-done/BI.BJ                    one marker per finished label chunk (its measurements, JSON)
        spill/ROW.K.npz                      window logits kept for the next column stripe
        infer.lock, annotations.lock         who writes (pid, host); flock-based where marked

Root attrs: ``bigseg`` (format version, bigseg version), ``source`` (file, size, bands), ``pixel_size_um``
(or null), ``classes`` (the class table). Every array has attr ``complete``: it is false while the array is
being written and becomes true only when the last chunk is on disk, so a half-written array never looks
finished. A store made by ``ingest`` only appears under its final name once complete (it is written under a
temporary name and renamed).
"""

from __future__ import annotations

from bigseg.defaults import DEFAULT_CHUNK  # noqa: F401 - part of the store's layout
from bigseg.store.damage import (  # noqa: F401
    Checked,
    check_chunks,
    chunk_file,
    dask_array,
    read,
)
from bigseg.store.layout import (  # noqa: F401
    ALL_CHUNKS,
    BIGSEG_DIR,
    FORMAT_VERSION,
    INFER_LOCK,
    LABELS_DONE,
    RULED_DONE,
    SPILL,
    STAGED,
    Mode,
    array,
    attr,
    class_table,
    compressor,
    consolidate,
    create_array,
    first_line,
    init_root_attrs,
    is_complete,
    is_store,
    is_url,
    join,
    level_factors,
    location,
    name_of,
    open_array,
    open_dataset,
    open_store,
    pixel_size_um,
    set_complete,
    staged,
    subgroup,
    zarr_open_new,
)
from bigseg.store.locks import (  # noqa: F401
    object_lock,
    output_lock,
    output_lock_path,
    pid_alive,
    pid_lock,
    wait_for_lock,
)
from bigseg.store.staging import (  # noqa: F401
    clean_stale_stages,
    object_output,
    remove_stale_partials,
    staged_output,
    staged_swap,
    swap_in,
    swap_in_objects,
)
