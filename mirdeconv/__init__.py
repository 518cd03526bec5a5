"""mirdeconv."""
