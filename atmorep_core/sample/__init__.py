"""The embedded sample atmosphere: a real dynamical core (dinosaur) whose hourly output is written
as ERA5 model-level GRIB, and an IFS-like companion forecast with a known model error.

`simulate` runs the core and writes the files, `levels` maps its sigma layers and spectral
fields onto ERA5's levels and lat-lon points, `grib` names and encodes the messages.
"""
