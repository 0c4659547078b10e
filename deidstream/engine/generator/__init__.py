"""G_3d: the 3D morphable face generator (mesh, rasteriser, UV atlas, render, compositor, inversion)."""
