"""Torch networks the rooms run and the export room exports.

A low layer, beside :mod:`deidstream.geometry`: the networks are rebuilt here from the models the
product ships (read at load time from the models' own files), so any room can run them.
"""
