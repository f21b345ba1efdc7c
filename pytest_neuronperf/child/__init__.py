"""The model-process side: the code that runs inside each model copy (and nothing it imports
is above this room: see docs/architecture.md)."""
