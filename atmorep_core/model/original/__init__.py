"""Importing the published AtmoRep models: their configuration, weights and normalisation."""
