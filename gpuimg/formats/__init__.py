"""Image classes of the supported formats."""
