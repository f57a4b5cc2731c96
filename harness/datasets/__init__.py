"""The dataset layer: everything downstream reads data through it.

- ``capture``: the HDF5 capture format (write, read, open read-only)
- ``capture_limits``: what a capture may declare, checked on its metadata before it is read
- ``demonstrators``, ``recording``: scripted demonstrators and recording them in Gymnasium
- ``manifest``: manifests and their entries; ``paths``: safe capture-path resolution
- ``checksums``: checksum sheets and their SHA256SUMS export (the hashing is ``harness.hashing``)
- ``integrity``: ``verify`` a dataset against its sheet, collecting typed problems
- ``quality``: ``inspect`` captures for malformed content and demonstrator behaviour
- ``curation``: add and review captures, keeping the sheet in step
- ``registry``: dataset names (idle_v1, preflight, manifest paths)
- ``preflight``: the synthetic preflight dataset
"""
