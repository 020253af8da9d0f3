"""soil_pipeline: field soil measurements and global grids in, versioned numbers on soil carbon potential out."""
