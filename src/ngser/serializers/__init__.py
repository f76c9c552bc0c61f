"""Serializers that ship with ngser: stdlib helpers (``builtin``) and NGSolve (``ngsolve``).

Each is registered lazily by a provider in :mod:`ngser.registry`, so importing
ngser imports neither cloudpickle nor NGSolve.
"""
