"""Parent-side orchestration of model processes."""
