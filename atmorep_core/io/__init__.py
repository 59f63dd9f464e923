"""Readers and writers: GRIB (eccodes), NetCDF, and the zarr training store."""
