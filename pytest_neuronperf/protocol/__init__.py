"""The plain-data types both sides of the model pipe share: what a copy runs (``specs``) and
what crosses the pipe (``messages``)."""
