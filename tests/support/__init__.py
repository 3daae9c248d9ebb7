"""Helpers shared by test modules (one place per helper; test modules never import each other)."""
