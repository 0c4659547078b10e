"""Builds the shipped face model (``deidstream build-model``) from the shared data folder."""
