"""Nuclear instances (no Qt): HoVer-Net targets, post-processing, block stitching."""
