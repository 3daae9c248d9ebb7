"""chaos: a chaos engineering experiment runner with SLO hypotheses and crash-safe rollback."""

__version__ = "0.1.0"
