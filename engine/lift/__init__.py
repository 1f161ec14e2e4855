"""Lifting: Gaussians from panoramic video + depth, optimised through a differentiable
rasteriser (gsplat on CUDA, :mod:`engine.lift.raster` everywhere)."""
