"""The smoke test that runs inside a provisioned environment: ``python -m envspec.smoke``.

Only the standard library, torch, diffusers, transformers, numpy and pillow may be imported by
this package (and ``envspec/__init__.py``): envspec itself and its other dependencies are not
installed in the environments it checks. ``envspec smoke`` copies just this package there.
"""
