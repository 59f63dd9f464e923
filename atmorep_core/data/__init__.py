"""From files to training data: GRIB ingest, normalisation, the neighbourhood sampler."""
