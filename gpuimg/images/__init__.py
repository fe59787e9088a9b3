"""Image class hierarchy: FileBasedImage -> DataobjImage -> SpatialImage."""
