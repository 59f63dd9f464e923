"""From files to training data: GRIB ingest, normalisation, sampling, the embedded sample."""
