"""Plain data shared by every layer: volumes with geometry, errors, paths, logging. No Qt, no torch."""
