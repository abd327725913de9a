"""Test helpers: a deliberately naive reference model of the engine (`naive.NaiveEngine`),
written from docs/core.md, that the model-based tests compare the real `Engine` against."""
