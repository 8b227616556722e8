"""Trading venues behind ``providers.base.Venue``: paper (simulated), Lighter and Ostium."""
