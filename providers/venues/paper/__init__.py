"""The paper venue: simulated prices, fills and positions for demos, drills and tests."""
