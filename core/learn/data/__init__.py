"""Data, one idea per module: ``load`` (``load_dataset``: a dataset by name), ``dataset`` (the values it returns),
``synthetic`` and ``digits`` (the built-in sets), ``files`` (CSV and NPZ) and ``images`` (image folders), ``splits``
(the stratified split, scaling and noise)."""
