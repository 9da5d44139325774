"""Reports of hepspark runs: PNG plots and summaries a physicist can open."""
