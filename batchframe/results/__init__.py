"""The shared result schema, combining attempts per row, merging into a frame, cost, and Parquet export.
Pure functions over Arrow tables and DataFrames."""
