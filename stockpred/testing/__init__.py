"""What the project's tests share with anyone who adds a model: the conformance checks."""
