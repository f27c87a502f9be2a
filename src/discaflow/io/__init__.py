"""File formats: MRC volumes, the HDF5 subtomogram store, STAR tables; atomic writes for all."""
