"""`make bench`: the gateway against the raw driver and a hand-written endpoint, measured in one run."""
