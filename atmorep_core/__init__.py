"""AtmoRep engine: data, model, training, inference and evaluation. A library: no printing."""

__version__ = "0.1.0"
