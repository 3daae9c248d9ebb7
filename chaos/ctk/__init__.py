"""Chaos Toolkit compatibility: run its experiment files with our safety, write its journals,
offer our faults as its python activities (chaos.ctk.actions), and convert its files to ours.

The only package that imports `chaoslib`, always lazily (inside functions), so `chaos --help`
and `chaos validate` of a native file never pay for it.
"""
