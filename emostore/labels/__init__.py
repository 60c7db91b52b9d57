"""Rating tables -> label sets: MR / PR / AR aggregation, smoothing, stats, relabeling."""
