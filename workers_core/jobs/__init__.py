"""Jobs: the model, the retry schedule, and the Redis store that is their source of truth."""
